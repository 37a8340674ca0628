"""A trace against the real scheduler: every call of the trace made at its
(time-scaled) moment through a Client, as a mini-faas API server would, on
functions that run for the trace's durations; measured as the simulator
measures, so the two can be compared on the same trace."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shoal.core.config import Settings
from shoal.errors import SchedulingError, UsageError
from shoal.faas.client import Client, Invocation
from shoal.faas.model import Trace
from shoal.faas.policy import Policy
from shoal.faas.scheduler import Function, Options
from shoal.faas.service import start_scheduler

HANDLER = "shoal.faas.functions:hold"  # importable wherever an agent runs


def scaled(trace: Trace, speed: float = 1.0, limit_s: float | None = None) -> Trace:
    """Times and durations divided by speed; only calls arriving before limit_s."""
    if not speed > 0:
        raise UsageError(f"the speed must be positive, got {speed}")
    t = trace.times / speed
    keep = t < limit_s if limit_s is not None else np.ones(len(t), bool)
    if not keep.any():
        raise UsageError(f"no call of the trace arrives within {limit_s} s")
    start = float(t[keep].min())
    return Trace(trace.functions, t[keep] - start, trace.func[keep], trace.durations[keep] / speed)


SPARE_START_S = 0.05  # a start faster than this came from a spare (agent/spares.py)


@dataclass
class Replayed:
    calls: int = 0
    cold: int = 0
    errors: int = 0
    sl_ms: list[float] = field(default_factory=list)  # scheduling latency per answered call
    cold_sl_ms: list[float] = field(default_factory=list)
    warm_sl_ms: list[float] = field(default_factory=list)
    rt_s: float = 0.0  # sum of SL + duration
    wall_s: float = 0.0
    late_ms: float = 0.0  # how far behind the trace the most-late call was sent
    usage: dict[str, Any] = field(default_factory=dict)
    first_errors: list[str] = field(default_factory=list)
    starts: list[float] = field(default_factory=list)  # each CreateContainer, s, in order

    @property
    def cold_ratio(self) -> float:
        return self.cold / self.calls if self.calls else 0.0

    @property
    def mean_create_s(self) -> float | None:
        """Mean CreateContainer time of the run; None when it made none."""
        made = self.usage.get("created", 0)
        return self.usage.get("create_s", 0.0) / made if made else None

    def to_json(self) -> dict[str, Any]:
        sl = np.array(self.sl_ms) if self.sl_ms else np.zeros(1)
        warm = self.warm_sl_ms
        return {
            "calls": self.calls,
            "cold": self.cold,
            "cold_ratio": self.cold_ratio,
            "errors": self.errors,
            "error_rate": self.errors / self.calls if self.calls else 0.0,
            "mean_sl_ms": float(sl.mean()),
            "p99_sl_ms": float(np.percentile(sl, 99)),
            "mean_warm_sl_ms": float(np.mean(warm)) if warm else 0.0,
            "mean_cold_sl_ms": float(np.mean(self.cold_sl_ms)) if self.cold_sl_ms else 0.0,
            "rt_s": self.rt_s,
            "wall_s": self.wall_s,
            "late_ms": self.late_ms,
            "nd": self.usage.get("node_seconds", 0.0),
            "wasted_gbs": self.usage.get("wasted_gbs", 0.0),
            "containers": self.usage.get("created", 0),
            "mean_create_ms": 1000 * (self.mean_create_s or 0.0),
            "first_errors": self.first_errors,
        }


def functions_of(trace: Trace, timeout_ms: int) -> list[Function]:
    return [
        Function(f"trace-{i}", HANDLER, int(f.memory_mb) << 20, timeout_ms)
        for i, f in enumerate(trace.functions)
    ]


async def replay_trace(
    trace: Trace,
    policy: Policy,
    nodes: str,
    *,
    settings: Settings,
    node_memory: int = 3072 << 20,
    options: Options | None = None,
    timeout_ms: int = 60_000,
) -> Replayed:
    """Run every call of ``trace`` (already scaled) against a scheduler of
    its own on ``nodes``; the scheduler is stopped and its containers removed."""
    if any(f.memory_mb > node_memory / 2**20 for f in trace.functions):
        raise UsageError("a function of the trace needs more memory than a node offers")
    running = await start_scheduler(
        nodes, policy, settings=settings, node_memory=node_memory, options=options
    )
    fns = [running.scheduler.register(f) for f in functions_of(trace, timeout_ms)]
    client = Client(f"127.0.0.1:{running.served.port}", settings)
    out = Replayed(calls=len(trace))
    events = [json.dumps({"s": round(float(d), 6)}).encode() for d in trace.durations]

    async def one(i: int) -> None:
        try:
            inv: Invocation = await client.invoke(fns[int(trace.func[i])].name, events[i])
        except SchedulingError as e:
            out.errors += 1
            if len(out.first_errors) < 3:
                out.first_errors.append(e.message)
            return
        sl = inv.scheduling_ns / 1e6
        out.sl_ms.append(sl)
        if inv.cold:
            out.cold += 1
            out.cold_sl_ms.append(sl)
        else:
            out.warm_sl_ms.append(sl)
        if not inv.ok:
            out.errors += 1
            if len(out.first_errors) < 3:
                out.first_errors.append(f"{inv.error_code}: {inv.error_message}")
            return
        out.rt_s += sl / 1000 + inv.duration_ns / 1e9

    tasks: list[asyncio.Task[None]] = []
    start = time.perf_counter()
    try:
        for i, at in enumerate(trace.times.tolist()):
            delay = start + at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                out.late_ms = max(out.late_ms, -delay * 1000)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
        out.wall_s = time.perf_counter() - start
    finally:
        for t in tasks:
            t.cancel()
        await client.close()
        out.usage = running.scheduler.usage()
        out.starts = list(running.scheduler.starts)
        await running.stop()
        out.usage["node_seconds"] = running.scheduler.stats.node_seconds
    return out


def predicted(
    trace: Trace,
    policy: Policy,
    replayed: Replayed,
    *,
    nodes: int,
    node_memory: int,
    max_calls: int = 1,
    policy_cold_start: float | None = None,
    spares: int = 0,
) -> dict[str, Any]:
    """What the simulator predicts for the same (scaled) trace on the same
    nodes, its containers starting as long as the replay's did, in the same
    order; or, spares > 0, with that many spare workers per node modelled
    (faas/starts.py), a start from one as long as the replay's fast ones
    and one from scratch as its slow ones. max_calls > 1 when the scheduler
    learned calls per container (the replay's functions are light enough for
    the most it gives); policy_cold_start: the scheduler's
    Options.cold_start_s, what its policy took a start for."""
    from shoal.faas.simulate import Config, simulate_trace

    cold_s = replayed.mean_create_s or 1.0
    fast = [s for s in replayed.starts if s < SPARE_START_S]
    slow = [s for s in replayed.starts if s >= SPARE_START_S]
    if spares and slow:
        cold_s = float(np.median(slow))
    config = Config(
        node_mb=node_memory / 2**20,
        nodes=nodes,
        max_nodes=nodes,
        min_nodes=nodes,
        reserve_s=0.0,
        cold_start=cold_s,
        starts=() if spares else tuple(replayed.starts),
        spares=spares,
        spare_start=float(np.median(fast)) if fast else 0.005,
        policy_cold_start=policy_cold_start,
        placement="pack",
        max_calls=max_calls,
    )
    r = simulate_trace(trace, policy, config)
    return {
        "calls": r.calls,
        "cold": r.cold,
        "cold_ratio": r.cold_ratio,
        "errors": r.errors,
        "mean_sl_ms": r.sl / max(1, r.calls - r.errors) * 1000,
        "wasted_gbs": r.wasted_gbs,
        "cold_start_s": cold_s,
    }
