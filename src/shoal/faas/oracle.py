"""Lower bounds from perfect knowledge of a trace: no cold start (the RT
floor is the durations); each idle gap of a function either kept or, when
longer than a start, recreated just in time (the break-even), so the idle
memory-time floor counts only gaps shorter than a start; and the node-time
floor, the held memory (calls, those short gaps, the starts) packed
perfectly into nodes at every instant."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from shoal.faas.metrics import Result
from shoal.faas.model import Trace
from shoal.faas.simulate import Config


@dataclass
class Bound:
    rt: float
    wasted_gbs: float
    nd: float
    rt_by_fn: np.ndarray
    cold: int = 0

    def to_json(self, baseline: Result | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "cold": self.cold,
            "rt": self.rt,
            "wasted_gbs": self.wasted_gbs,
            "nd": self.nd,
        }
        if baseline is not None:
            has = baseline.rt_by_fn > 0
            rt = float(np.mean(self.rt_by_fn[has] / baseline.rt_by_fn[has])) if has.any() else 1.0
            out["score"] = 0.5 * rt + 0.5 * (self.nd / baseline.nd if baseline.nd else 1.0)
        return out


def _busy(start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The union of intervals (sorted by start) as (starts, ends)."""
    reach = np.maximum.accumulate(end)
    new = np.ones(len(start), bool)
    new[1:] = start[1:] > reach[:-1]
    idx = np.nonzero(new)[0]
    return start[idx], reach[np.append(idx[1:] - 1, len(start) - 1)]


def lower_bounds(trace: Trace, config: Config | None = None) -> Bound:
    c = config or Config()
    cs = c.cold_start
    nf = len(trace.functions)
    rt_by_fn = np.bincount(trace.func, weights=trace.durations, minlength=nf).astype(float)
    wasted = 0.0
    t_ev: list[np.ndarray] = []
    d_ev: list[np.ndarray] = []
    for fn in range(nf):
        sel = trace.func == fn
        if not sel.any():
            continue
        mb = trace.functions[fn].memory_mb
        s, e = trace.times[sel], trace.times[sel] + trace.durations[sel]
        t_ev += [s, e]  # every call holds its memory while it runs
        d_ev += [np.full(len(s), mb), np.full(len(e), -mb)]
        bs, be = _busy(s, e)
        gaps = bs[1:] - be[:-1]
        short = gaps <= cs
        wasted += float(gaps[short].sum()) * mb / 1024.0
        # held across the short gaps, and booting for cs before each other start
        hold_from = np.concatenate(
            [be[:-1][short], np.maximum(bs[1:][~short] - cs, 0), [max(bs[0] - cs, 0)]]
        )
        hold_to = np.concatenate([bs[1:][short], bs[1:][~short], [bs[0]]])
        t_ev += [hold_from, hold_to]
        d_ev += [np.full(len(hold_from), mb), np.full(len(hold_to), -mb)]
    if not t_ev:
        return Bound(0.0, 0.0, 0.0, rt_by_fn)
    t = np.concatenate(t_ev)
    d = np.concatenate(d_ev)
    order = np.lexsort((-d, t))  # at one instant, arrivals before departures
    t, held = t[order], np.cumsum(d[order])
    nodes = np.maximum(np.ceil(np.round(held, 6) / c.node_mb), c.min_nodes)
    nd = float(np.sum(nodes[:-1] * np.diff(t)))
    return Bound(float(rt_by_fn.sum()), wasted, nd, rt_by_fn)
