"""shoal's keep-alive policy: per function and level of concurrency (a
second container waits for the gaps between two calls running at once, not
for those between calls), the last idle gaps (exact, not binned) choose the
warm window [a, b] after a call that costs least over that history, where a
gap outside the window costs a cold start, valued at ``cold_value`` GB-s per
second of start (so a heavy function is kept for less), and a gap inside it
costs the memory held from a to the gap. a > 0 pre-warms just before a
predicted (e.g. periodic) arrival, and pays for one gap shorter than any seen
(``early`` starts); a window past every gap seen is kept a break-even time
longer, as before any history (ski rental)."""

from __future__ import annotations

from collections import deque

import numpy as np

from shoal.faas.policy import Policy, Window


class Adaptive(Policy):
    name = "shoal"

    def __init__(
        self,
        *,
        history: int = 64,
        cold_value: float = 50.0,  # chosen by the mini-faas score (benchmarks/faas_policy.py)
        slack: float = 0.02,
        pad_s: float = 1.0,
        early: float = 1.0,
        levels: int = 64,  # deeper levels share the last one's history
    ) -> None:
        self.history, self.cold_value = history, cold_value
        self.slack, self.pad_s, self.early, self.levels = slack, pad_s, early, levels
        self.gaps: dict[tuple[int, int], deque[float]] = {}
        self.cache: dict[tuple[int, int], tuple[int, Window]] = {}
        self.seen: dict[tuple[int, int], int] = {}

    def break_even(self, fn: int) -> float:
        gb = max(self.memory_mb[fn], 64.0) / 1024.0
        return self.cold_value * self.cold_start / gb

    def on_invoke(self, fn: int, now: float, cold: bool, gap: float | None, level: int = 0) -> None:
        if gap is not None:
            k = (fn, min(level, self.levels))
            self.gaps.setdefault(k, deque(maxlen=self.history)).append(gap)
            self.seen[k] = self.seen.get(k, 0) + 1

    def on_idle(self, fn: int, now: float, level: int = 0) -> Window:
        k = (fn, min(level, self.levels))
        g = self.gaps.get(k)
        if not g:
            return Window(0.0, self.break_even(fn))
        seen = self.seen[k]
        hit = self.cache.get(k)
        if hit is not None and seen - hit[0] < max(1, len(g) // 8):
            return hit[1]
        w = self.best(np.sort(np.fromiter(g, float)), self.break_even(fn))
        self.cache[k] = (seen, w)
        return w

    def best(self, g: np.ndarray, miss: float) -> Window:
        """The window of least cost on sorted gaps g; ties keep less memory."""
        n = len(g)
        a = np.concatenate([[0.0], g * (1 - self.slack) - self.pad_s]).clip(0.0)
        s = np.concatenate([[0], np.arange(n)])  # first gap each a can hit
        b = g * (1 + self.slack) + self.pad_s
        p = np.concatenate([[0.0], np.cumsum(g)])
        j = np.arange(n)[None, :]
        si, ai = s[:, None], a[:, None]
        hits = p[j + 1] - p[si] - (j - si + 1) * ai
        after = (n - 1 - j) * (b[None, :] - ai + miss)
        cost = np.where(j >= si, miss * si + hits + after, np.inf)
        cost[1:] += self.early * miss
        k = int(np.argmin(cost))
        if cost.flat[k] >= miss * n:
            return Window(0.0, 0.0)  # recreating on every call is cheaper
        r, c = divmod(k, n)
        end = float(b[c])
        if c == n - 1:
            end += miss
        return Window(float(a[r]), end)
