"""Choosing a backend among the eligible ones."""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from typing import Protocol, TypeVar


class Candidate(Protocol):
    @property
    def weight(self) -> float: ...
    @property
    def outstanding(self) -> int: ...
    @property
    def capacity(self) -> int: ...
    @property
    def latency(self) -> float | None: ...  # EWMA of recent runs, None before the first


T = TypeVar("T", bound=Candidate)


class Balancer:
    def __init__(self, policy: str, rng: random.Random | None = None) -> None:
        self.policy = policy
        # random and round-robin are the practices shoal is compared with: they
        # choose without looking at load (the old proxy's random.choices, nginx),
        # so the pool pins a run to the pick and lets it wait for that backend
        self.oblivious = policy in ("random", "round-robin")
        self.rng = rng or random.Random()
        self._rr = itertools.count()

    def pick(self, cands: Sequence[T]) -> T:
        if len(cands) == 1:
            return cands[0]
        if self.policy == "random":  # the reference's weighted random.choices
            return self.rng.choices(list(cands), weights=[c.weight for c in cands])[0]
        if self.policy == "round-robin":
            return cands[next(self._rr) % len(cands)]
        # power of two choices on expected latency ("peak EWMA", as Finagle and
        # Linkerd do): a backend's recent run time, raised as its slots fill.
        # Least-outstanding alone evens out in-flight counts, so a slow backend
        # still gets its share of the runs and sets the p99; with latency in
        # the cost it is used only when the fast ones are nearly full.
        known = [c.latency for c in cands if c.latency is not None]
        fresh = min(known) if known else 1.0  # untried: as good as the best

        def cost(c: T) -> float:
            lat = c.latency if c.latency is not None else fresh
            return lat * (1 + c.outstanding / c.capacity) / c.weight

        a, b = self.rng.sample(list(cands), 2)
        return a if cost(a) <= cost(b) else b
