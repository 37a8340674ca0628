"""How long a container start takes in the simulator: the configured start,
the measured ones taken in turn, or the agents' spare workers modelled
(agent/spares.py): a start takes ``spare_s`` when a spare waits on its node,
else the configured start; a taken spare is replaced after that same time,
STARTING at a time; a start that found none makes the node keep one more, up
to GROWTH times as many, and one a minute after the last such miss gives one
back."""

from __future__ import annotations

from dataclasses import dataclass, field

from shoal.agent.spares import GROWTH, SHRINK_S, STARTING


@dataclass
class _Pool:
    want: int
    ready: int
    missed: float = 0.0
    starting: list[float] = field(default_factory=list)  # when each refill is ready


class Starts:
    def __init__(
        self, cold_start: float, measured: tuple[float, ...] = (), spares: int = 0,
        spare_s: float = 0.005,
    ) -> None:  # fmt: skip
        self.cold_start, self.measured = cold_start, measured
        self.spares, self.spare_s = spares, spare_s
        self.pools: dict[int, _Pool] = {}
        self.n = 0

    def _pool(self, node: int, now: float) -> _Pool:
        p = self.pools.get(node)
        if p is None:  # spares kept from the scheduler's first poll
            p = self.pools[node] = _Pool(self.spares, self.spares, now)
        p.starting.sort()
        while p.starting and p.starting[0] <= now:
            t = p.starting.pop(0)
            p.ready += 1
            self._fill(p, t)
        return p

    def _fill(self, p: _Pool, t: float) -> None:
        while len(p.starting) < STARTING and p.ready + len(p.starting) < p.want:
            p.starting.append(t + self.cold_start)

    def waiting(self, node: int, now: float) -> bool:
        """A spare waits on the node (placement prefers it)."""
        return self.spares > 0 and self._pool(node, now).ready > 0

    def take(self, node: int, now: float) -> float:
        """The seconds a container started on ``node`` now takes."""
        if self.spares <= 0:
            self.n += 1
            m = self.measured
            return m[(self.n - 1) % len(m)] if m else self.cold_start
        p = self._pool(node, now)
        if p.ready > 0:
            p.ready -= 1
            if p.want > self.spares and now - p.missed > SHRINK_S:
                p.want, p.missed = p.want - 1, now
                p.ready = min(p.ready, p.want)
            took = self.spare_s
        else:
            p.want, p.missed = min(p.want + 1, self.spares * GROWTH), now
            took = self.cold_start
        self._fill(p, now)
        return took
