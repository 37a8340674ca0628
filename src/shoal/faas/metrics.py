"""What a simulated run measured, and the mini-faas score against a baseline."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Result:
    policy: str
    calls: int = 0
    cold: int = 0
    errors: int = 0
    wasted_gbs: float = 0.0  # idle container memory-time, GB-s
    nd: float = 0.0  # node-seconds held
    rt: float = 0.0  # sum of scheduling latency + duration over answered calls, s
    sl: float = 0.0  # sum of scheduling latency, s
    containers: int = 0  # started, pre-warmed ones included
    evictions: int = 0
    peak_mb: float = 0.0  # most container memory held at once
    min_free_mb: float = 0.0  # lowest free memory any node reached
    peak_nodes: int = 0
    wall_s: float = 0.0
    rt_by_fn: np.ndarray = field(default_factory=lambda: np.zeros(0))
    answered: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))

    @property
    def cold_ratio(self) -> float:
        return self.cold / self.calls if self.calls else 0.0

    @property
    def error_rate(self) -> float:
        return self.errors / self.calls if self.calls else 0.0

    def to_json(self, baseline: Result | None = None) -> dict[str, Any]:
        out = {
            "policy": self.policy, "calls": self.calls, "cold": self.cold,
            "cold_ratio": self.cold_ratio, "errors": self.errors,
            "error_rate": self.error_rate, "wasted_gbs": self.wasted_gbs,
            "nd": self.nd, "rt": self.rt, "sl": self.sl, "containers": self.containers,
            "evictions": self.evictions, "peak_mb": self.peak_mb,
            "peak_nodes": self.peak_nodes, "wall_s": self.wall_s,
        }  # fmt: skip
        if baseline is not None:
            out["score"] = score(self, baseline)
        return out


def score(run: Result, baseline: Result) -> float:
    """0.5 x mean over functions of sum RT_f / sum RT_f(baseline) + 0.5 x
    ND / ND(baseline), + 10 if more than 0.1 % of calls failed."""
    has = baseline.rt_by_fn > 0
    rt = float(np.mean(run.rt_by_fn[has] / baseline.rt_by_fn[has])) if has.any() else 1.0
    nd = run.nd / baseline.nd if baseline.nd else 1.0
    return 0.5 * rt + 0.5 * nd + (10.0 if run.error_rate > 0.001 else 0.0)
