"""The keep-alive policy interface the simulator calls (and the real scheduler
will): told of every call, asked what to do with a container gone idle, and
for an eviction priority when memory is needed."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

INF = math.inf


@dataclass(frozen=True)
class Window:
    """Keep a warm container of the function ready from ``start`` to ``end``
    seconds after now. start 0: keep it; start > 0: remove it now and pre-warm
    one for then; end 0: remove it now."""

    start: float = 0.0
    end: float = 0.0


class Policy(ABC):
    name = "policy"
    capacity_mb: float | None = None  # a policy's own cache size, if it has one

    def bind(self, memory_mb: Sequence[float], cold_start: float) -> None:
        """Before the first call: each function's memory and the start cost (s).
        The sequence is kept, not copied: the real scheduler appends to it as
        functions are first called."""
        self.memory_mb = memory_mb
        self.cold_start = cold_start

    def on_invoke(  # noqa: B027
        self, fn: int, now: float, cold: bool, gap: float | None, level: int = 0
    ) -> None:
        """A call arrived while ``level`` calls of the function ran; gap:
        seconds since its running calls last fell to ``level``, i.e. since
        the container that would serve it went idle (None the first time)."""

    @abstractmethod
    def on_idle(self, fn: int, now: float, level: int = 0) -> Window:
        """A container of ``fn`` has no call to serve; level: how many calls
        the function's other containers take at once, i.e. the level of
        running calls at which this one is needed again."""

    def priority(self, fn: int, now: float) -> float:
        """Eviction order of a container gone idle now: lowest goes first (LRU)."""
        return now

    def on_evict(self, fn: int, priority: float, now: float, last: bool) -> None:  # noqa: B027
        """An idle container was evicted for memory; last: none of ``fn`` left."""


class NoKeepAlive(Policy):
    name = "none"

    def on_idle(self, fn: int, now: float, level: int = 0) -> Window:
        return Window(0.0, 0.0)


class FixedTTL(Policy):
    """OpenWhisk keeps an idle container 10 minutes, Azure Functions 20."""

    def __init__(self, ttl: float = 600.0) -> None:
        self.ttl = ttl
        self.name = f"ttl-{ttl / 60:g}"

    def on_idle(self, fn: int, now: float, level: int = 0) -> Window:
        return Window(0.0, self.ttl)
