"""FaasCache's Greedy-Dual-Size-Frequency keep-alive (Fuerst and Sharma,
ASPLOS'21): containers stay warm until memory is needed; the one with the
lowest priority = clock + frequency x cost / size goes first, and the clock
becomes the priority of the last one evicted."""

from __future__ import annotations

from shoal.faas.policy import INF, Policy, Window


class GreedyDual(Policy):
    name = "greedy-dual"

    def __init__(self, capacity_mb: float | None = None) -> None:
        self.capacity_mb = capacity_mb  # None: the cluster's memory
        self.clock = 0.0
        self.freq: dict[int, int] = {}

    def on_invoke(self, fn: int, now: float, cold: bool, gap: float | None, level: int = 0) -> None:
        self.freq[fn] = self.freq.get(fn, 0) + 1

    def on_idle(self, fn: int, now: float, level: int = 0) -> Window:
        return Window(0.0, INF)

    def priority(self, fn: int, now: float) -> float:
        cost = self.cold_start  # the start a warm hit saves
        size = max(self.memory_mb[fn], 1.0)
        return self.clock + self.freq.get(fn, 0) * cost / size

    def on_evict(self, fn: int, priority: float, now: float, last: bool) -> None:
        self.clock = max(self.clock, priority)
        if last:
            self.freq[fn] = 0  # FaasCache forgets a function it no longer holds
