"""Calls per container, learned from what the agents report: as many at once
as leave room in memory (60 % of the container's at the observed peak per
call) and in its CPU quota (half of it), scaling what was seen linearly."""

from __future__ import annotations

from shoal.agent.containers import CORES_PER_GIB, MIN_CORES
from shoal.faas.state import MAX_CAP, Function

MEMORY_SHARE = 0.6
CPU_SHARE = 0.5


def room_for(fn: Function) -> int:
    """The calls a container of fn can take at once by its peak memory and
    CPU at its present concurrency (at least 1, at most MAX_CAP)."""
    if fn.peak <= 0:
        return fn.cap
    per_call = fn.peak / fn.cap
    cores = max(MIN_CORES, CORES_PER_GIB * fn.memory / 2**30)  # the container's quota
    used = fn.cpu_pct / 100 / fn.cap  # cores per call
    by_cpu = int(CPU_SHARE * cores / used) if used > 0 else MAX_CAP
    return max(1, min(MAX_CAP, int(MEMORY_SHARE * fn.memory / per_call), by_cpu))
