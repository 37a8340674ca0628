"""Policies by name, as the CLI and the benchmark ask for them."""

from __future__ import annotations

from collections.abc import Callable

from shoal.errors import UsageError
from shoal.faas.adaptive import Adaptive
from shoal.faas.greedydual import GreedyDual
from shoal.faas.hybrid import Hybrid
from shoal.faas.policy import FixedTTL, NoKeepAlive, Policy

POLICIES: dict[str, Callable[[], Policy]] = {
    "none": NoKeepAlive,
    "ttl-10": lambda: FixedTTL(600.0),
    "ttl-20": lambda: FixedTTL(1200.0),
    "hybrid": Hybrid,
    "greedy-dual": GreedyDual,
    "shoal": Adaptive,
}


def make_policy(name: str) -> Policy:
    if name not in POLICIES:
        raise UsageError(f"unknown policy {name!r}; one of: {', '.join(POLICIES)}")
    return POLICIES[name]()
