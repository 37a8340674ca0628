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


T = TypeVar("T", bound=Candidate)


class Balancer:
    def __init__(self, policy: str, rng: random.Random | None = None) -> None:
        self.policy = policy
        self.rng = rng or random.Random()
        self._rr = itertools.count()

    def pick(self, cands: Sequence[T]) -> T:
        if len(cands) == 1:
            return cands[0]
        if self.policy == "random":  # the reference's weighted random.choices
            return self.rng.choices(list(cands), weights=[c.weight for c in cands])[0]
        if self.policy == "round-robin":
            return cands[next(self._rr) % len(cands)]
        # weighted least-outstanding of two random choices (power of two choices)
        a, b = self.rng.sample(list(cands), 2)
        la = (a.outstanding + 1) / a.weight
        lb = (b.outstanding + 1) / b.weight
        return a if la <= lb else b
