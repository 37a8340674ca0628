"""The hybrid histogram policy of "Serverless in the Wild" (Shahrad et al.,
USENIX ATC'20): an idle-time histogram of 1-minute bins over 4 hours; pre-warm
at the 5th percentile less 10 %, keep alive to the 99th plus 10 %; when the
histogram is not representative (too few idle times, bin counts too even: a
coefficient of variation at most 2, or mostly beyond the range) a fixed
keep-alive of the whole range. Kept per function here, as containers are (the
paper keys it by app); the ARIMA branch for idle times beyond the range falls
back to the fixed keep-alive too."""

from __future__ import annotations

import numpy as np

from shoal.faas.policy import Policy, Window


class Hybrid(Policy):
    name = "hybrid"

    def __init__(
        self,
        *,
        bin_s: float = 60.0,
        range_s: float = 4 * 3600.0,
        head: float = 5.0,
        tail: float = 99.0,
        margin: float = 0.10,
        cv_min: float = 2.0,
        min_samples: int = 5,
        oob_max: float = 0.5,
    ) -> None:
        self.bin_s, self.range_s = bin_s, range_s
        self.bins = int(range_s // bin_s)
        self.head, self.tail, self.margin = head, tail, margin
        self.cv_min, self.min_samples, self.oob_max = cv_min, min_samples, oob_max
        self.hist: dict[int, np.ndarray] = {}
        self.oob: dict[int, int] = {}
        self.cache: dict[int, Window] = {}

    def on_invoke(self, fn: int, now: float, cold: bool, gap: float | None, level: int = 0) -> None:
        if gap is None:
            return
        b = int(gap // self.bin_s)
        if b < self.bins:
            self.hist.setdefault(fn, np.zeros(self.bins, dtype=np.int64))[b] += 1
        else:
            self.oob[fn] = self.oob.get(fn, 0) + 1
        self.cache.pop(fn, None)

    def window(self, fn: int) -> Window:
        fallback = Window(0.0, self.range_s)
        h = self.hist.get(fn)
        oob = self.oob.get(fn, 0)
        n = int(h.sum()) if h is not None else 0
        if h is None or n < self.min_samples or oob > self.oob_max * (n + oob):
            return fallback
        if h.std() / h.mean() <= self.cv_min:
            return fallback
        cum = np.cumsum(h) / n
        lo = int(np.searchsorted(cum, self.head / 100.0))
        hi = int(np.searchsorted(cum, self.tail / 100.0))
        pre = lo * self.bin_s * (1 - self.margin)
        keep = (hi + 1) * self.bin_s * (1 + self.margin)
        return Window(pre, keep)

    def on_idle(self, fn: int, now: float, level: int = 0) -> Window:
        w = self.cache.get(fn)
        if w is None:
            w = self.cache[fn] = self.window(fn)
        return w
