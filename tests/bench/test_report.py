"""The report: summaries with hyperfine's outlier rule, throughput per host
with its interval, the winning layout and Welch's test, the change against
another campaign, and the files it writes."""

from __future__ import annotations

import csv
import json
import math
import statistics
from pathlib import Path
from typing import Any

import pytest

from shoal.bench import build_report, write_files, write_plots
from shoal.bench.stats import (
    OUTLIER_THRESHOLD,
    mean_interval,
    relative_change,
    summarize,
    welch,
)


def test_a_summary_is_what_the_statistics_module_says() -> None:
    xs = [10.0, 10.5, 9.8, 10.2, 10.1, 30.0]
    s = summarize(xs)
    assert (s.n, s.mean, s.median, s.min, s.max) == (
        6,
        statistics.fmean(xs),
        statistics.median(xs),
        9.8,
        30.0,
    )
    assert s.stdev == statistics.stdev(xs) and s.cv == s.stdev / s.mean
    assert s.outliers == (5,)  # 30 is (30 - 10.15) / 0.2 = 99 MADs from the median
    assert summarize([10.0, 10.5, 9.8, 10.2, 10.1, 11.0]).outliers == ()
    assert OUTLIER_THRESHOLD == pytest.approx(14.826)


def test_welch_matches_its_formula() -> None:
    a, b = [10.1, 10.3, 9.9, 10.0, 10.2], [11.0, 11.4, 10.8, 11.1, 11.3, 10.9]
    w = welch(a, b)
    assert w is not None
    va, vb = statistics.variance(a) / 5, statistics.variance(b) / 6
    assert w.t == pytest.approx((statistics.fmean(a) - statistics.fmean(b)) / math.sqrt(va + vb))
    assert w.df == pytest.approx((va + vb) ** 2 / (va**2 / 4 + vb**2 / 5))
    assert w.significant and w.p < 1e-4
    from scipy import stats

    ref = stats.ttest_ind(a, b, equal_var=False)
    assert (w.t, w.p) == (pytest.approx(ref.statistic), pytest.approx(ref.pvalue))
    lo, hi = mean_interval(summarize(a))
    assert (lo, hi) == pytest.approx(
        stats.t.interval(0.95, 4, loc=statistics.fmean(a), scale=stats.sem(a))
    )
    assert welch([1.0], b) is None
    ch, err = relative_change(summarize(b), summarize(a))
    assert ch == pytest.approx(statistics.fmean(b) / statistics.fmean(a) - 1) and 0 < err < ch


def runs(layout: str, secs: list[float], status: str = "complete") -> list[dict[str, Any]]:
    return [
        {"file": f"{layout}-{i}.log", "group": {"layout": layout, "rep": str(i)}, "phase": "p2",
         "occurrence": 1, "status": status, "seconds": s if status == "complete" else None}
        for i, s in enumerate(secs)
    ]  # fmt: skip


def data(**secs: list[float]) -> dict[str, Any]:
    rs = [r for layout, xs in secs.items() for r in runs(layout, xs)]
    rs += runs("2slot", [0.0], "incomplete")
    return {"campaign": "c", "runs": rs, "metrics": [], "slots": {"2slot": 2, "4slot": 4}}


def test_throughput_per_host_and_the_winning_layout() -> None:
    rep = build_report(data(**{"2slot": [100.0, 102.0, 98.0], "4slot": [150.0, 152.0, 149.0]}))
    (r2, r4) = [r for r in rep.rows if r.name == "p2"]
    assert (r2.layout, r2.summary and r2.summary.n, r2.incomplete) == ("2slot", 3, 1)
    assert (r4.layout, r4.summary and r4.summary.n, r4.incomplete) == ("4slot", 3, 0)
    t2, t4 = rep.throughput
    assert t2.per_hour == pytest.approx(2 * 3600 / 100.0)
    assert t4.per_hour == pytest.approx(4 * 3600 / statistics.fmean([150.0, 152.0, 149.0]))
    assert t4.low < t4.per_hour < t4.high
    (v,) = rep.verdicts
    assert (v.best, v.runner_up, v.significant) == ("4slot", "2slot", True)
    assert v.gain == pytest.approx(t4.per_hour / t2.per_hour - 1)


def test_a_difference_within_the_noise_is_not_significant() -> None:
    rep = build_report(data(**{"2slot": [100.0, 140.0, 60.0], "4slot": [190.0, 195.0, 185.0]}))
    (v,) = rep.verdicts
    assert v.best == "4slot" and v.significant is False


def test_compare_gives_the_relative_change_with_its_uncertainty() -> None:
    old = data(**{"2slot": [100.0, 102.0, 98.0]})
    new = data(**{"2slot": [90.0, 91.0, 89.0]})
    rep = build_report(new, old)
    (ch,) = rep.changes
    assert ch.change == pytest.approx(90 / 100 - 1)
    assert 0 < ch.uncertainty < 0.02 and ch.p is not None and ch.p < 0.05


def test_unknown_slots_are_said(tmp_path: Path) -> None:
    d = data(**{"x": [5.0, 6.0]})
    rep = build_report(d)
    assert any("slots per layout unknown for x" in n for n in rep.notes)


def test_the_files_of_a_report(tmp_path: Path) -> None:
    rep = build_report(data(**{"2slot": [100.0, 102.0, 98.0], "4slot": [150.0, 152.0, 149.0]}))
    names = sorted(p.name for p in write_files(rep, tmp_path) + write_plots(rep, tmp_path))
    assert names == [
        "p2-by-layout.png", "p2-throughput.png", "report.json", "report.md", "summary.csv",
        "throughput.csv",
    ]  # fmt: skip
    for png in ("p2-by-layout.png", "p2-throughput.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = list(csv.DictReader((tmp_path / "summary.csv").open()))
    assert [(r["layout"], r["n"], r["incomplete"]) for r in rows] == [
        ("2slot", "3", "1"),
        ("4slot", "3", "0"),
    ]
    j = json.loads((tmp_path / "report.json").read_text())
    assert j["verdicts"][0]["best"] == "4slot"
    md = (tmp_path / "report.md").read_text()
    assert "| 4slot | p2 | s | 3 | 0 | 150.333 |" in md
    assert "layout 4slot gives the most per host" in md
