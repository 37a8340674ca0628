"""The statistics of a report: summaries with hyperfine's outlier rule,
t intervals, Welch's t-test and the uncertainty of a relative change
(the t distribution from scipy.special)."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

# hyperfine: |x - median| / MAD above 10 standard deviations (1.4826 MAD each)
OUTLIER_THRESHOLD = 1.4826 * 10.0
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float
    stdev: float  # sample standard deviation; 0 for n = 1
    median: float
    min: float
    max: float
    cv: float  # stdev / mean
    outliers: tuple[int, ...]  # indices into the values

    @property
    def sem(self) -> float:
        return self.stdev / math.sqrt(self.n) if self.n else math.nan


def modified_zscores(xs: list[float]) -> list[float]:
    """(x - median) / MAD, hyperfine's form; a MAD of 0 becomes the smallest float."""
    med = statistics.median(xs)
    mad = statistics.median([abs(x - med) for x in xs]) or 2.220446049250313e-16
    return [(x - med) / mad for x in xs]


def summarize(xs: list[float]) -> Summary:
    if not xs:
        raise ValueError("no values")
    mean = statistics.fmean(xs)
    sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
    z = modified_zscores(xs) if len(xs) > 2 else [0.0] * len(xs)
    return Summary(
        n=len(xs),
        mean=mean,
        stdev=sd,
        median=statistics.median(xs),
        min=min(xs),
        max=max(xs),
        cv=sd / mean if mean else math.nan,
        outliers=tuple(i for i, v in enumerate(z) if abs(v) > OUTLIER_THRESHOLD),
    )


def t_quantile(df: float, confidence: float = CONFIDENCE) -> float:
    from scipy.special import stdtrit  # scipy.stats costs a second to import

    return float(stdtrit(df, 0.5 + confidence / 2))


def mean_interval(s: Summary, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The t interval of the mean; (nan, nan) with one value."""
    if s.n < 2:
        return math.nan, math.nan
    half = t_quantile(s.n - 1, confidence) * s.sem
    return s.mean - half, s.mean + half


@dataclass(frozen=True)
class Welch:
    t: float
    df: float
    p: float  # two-sided

    @property
    def significant(self) -> bool:
        return self.p < 1 - CONFIDENCE


def welch(a: list[float], b: list[float]) -> Welch | None:
    """Welch's t-test of two samples; None when either has fewer than 2 values."""
    if len(a) < 2 or len(b) < 2:
        return None
    from scipy.special import stdtr

    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    diff = statistics.fmean(a) - statistics.fmean(b)
    if va + vb == 0:
        return Welch(0.0 if diff == 0 else math.inf, math.nan, 1.0 if diff == 0 else 0.0)
    t = diff / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))  # Welch-Satterthwaite
    return Welch(t, df, float(2 * stdtr(df, -abs(t))))


def relative_change(new: Summary, old: Summary) -> tuple[float, float]:
    """(new/old - 1, its standard uncertainty) by first-order propagation of
    both means' standard errors, as hyperfine's relative speed does."""
    ratio = new.mean / old.mean
    err = ratio * math.sqrt((new.sem / new.mean) ** 2 + (old.sem / old.mean) ** 2)
    return ratio - 1, err
