"""A campaign's report from its results (runs.json): per layout and phase the
summary, throughput per host (slots / mean duration, items per hour, with a
confidence interval), which layout wins and whether significantly (Welch's
t-test on per-run throughput), and with another campaign the relative
change of every mean with its uncertainty."""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from shoal.bench.stats import CONFIDENCE, Summary, mean_interval, relative_change, summarize, welch
from shoal.errors import UsageError

RESULTS = "runs.json"


def natural(s: str) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


@dataclass
class Row:
    layout: str
    name: str  # phase or metric
    kind: str  # "phase" or "metric"
    unit: str
    values: list[float]
    files: list[str]
    incomplete: int
    summary: Summary | None


@dataclass
class Throughput:
    host: str  # "" when the logs do not say: all runs together
    layout: str
    phase: str
    slots: int
    slots_known: bool
    per_hour: float
    low: float
    high: float
    rates: list[float]  # per run, items per hour


@dataclass
class Verdict:
    host: str
    phase: str
    best: str
    runner_up: str | None
    gain: float | None  # best / runner_up - 1
    p: float | None
    significant: bool | None


@dataclass
class Change:
    layout: str
    name: str
    old_mean: float
    new_mean: float
    change: float  # relative, new/old - 1
    uncertainty: float  # standard uncertainty of change
    p: float | None


@dataclass
class Report:
    campaign: str
    rows: list[Row]
    throughput: list[Throughput]
    verdicts: list[Verdict]
    changes: list[Change] = field(default_factory=list)
    compared_with: str = ""
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"confidence": CONFIDENCE, **asdict(self)}


def results_file(path: Path) -> Path:
    return path / RESULTS if path.is_dir() else path


def load_results(path: str | Path) -> dict[str, Any]:
    p = results_file(Path(path))
    try:
        data: dict[str, Any] = json.loads(p.read_text())
    except OSError as e:
        raise UsageError(f"results {p}: cannot read them: {e.strerror or e}") from e
    except ValueError as e:
        raise UsageError(f"results {p}: not JSON: {e}") from e
    if not isinstance(data, dict) or "runs" not in data:
        raise UsageError(f"results {p}: no runs in it (written by shoal bench parse?)")
    return data


def _rows(data: dict[str, Any]) -> list[Row]:
    acc: dict[tuple[str, str, str], Row] = {}
    for r in data["runs"]:
        key = (r["group"].get("layout", "all"), r["phase"], "phase")
        row = acc.setdefault(key, Row(*key, "s", [], [], 0, None))
        if r["status"] == "complete":
            row.values.append(float(r["seconds"]))
            row.files.append(r["file"])
        else:
            row.incomplete += 1
    for m in data.get("metrics", []):
        key = (m["group"].get("layout", "all"), m["metric"], "metric")
        row = acc.setdefault(key, Row(*key, m["unit"], [], [], 0, None))
        row.values.append(float(m["value"]))
        row.files.append(m["file"])
    for row in acc.values():
        row.summary = summarize(row.values) if row.values else None
    return sorted(acc.values(), key=lambda x: (x.kind != "phase", x.name, natural(x.layout)))


def _throughput(data: dict[str, Any], notes: list[str]) -> list[Throughput]:
    slots: dict[str, int] = data.get("slots", {})
    per: dict[tuple[str, str, str], list[float]] = {}
    for r in data["runs"]:
        if r["status"] == "complete" and r["seconds"] > 0:
            g = r["group"]
            key = (g.get("host", ""), g.get("layout", "all"), r["phase"])
            per.setdefault(key, []).append(float(r["seconds"]))
    out = []
    unknown = sorted({k[1] for k in per if k[1] not in slots}, key=natural)
    if unknown:
        notes.append(
            f"slots per layout unknown for {', '.join(unknown)}: counted as 1 "
            "(name the layout as in the campaign, or give the file names a (?P<slot>...) group)"
        )
    for (host, layout, phase), xs in sorted(per.items(), key=lambda kv: natural("|".join(kv[0]))):
        n = slots.get(layout, 1)
        s = summarize(xs)
        lo, hi = mean_interval(s)
        rate = n * 3600 / s.mean
        low = n * 3600 / hi if not math.isnan(hi) else math.nan
        high = (n * 3600 / lo if lo > 0 else math.inf) if not math.isnan(lo) else math.nan
        rates = [n * 3600 / x for x in xs]
        out.append(Throughput(host, layout, phase, n, layout in slots, rate, low, high, rates))
    return out


def _verdicts(tp: list[Throughput]) -> list[Verdict]:
    groups: dict[tuple[str, str], list[Throughput]] = {}
    for t in tp:
        groups.setdefault((t.host, t.phase), []).append(t)
    out = []
    for (host, phase), ts in sorted(groups.items()):
        ts = sorted(ts, key=lambda t: -t.per_hour)
        best = ts[0]
        if len(ts) == 1:
            out.append(Verdict(host, phase, best.layout, None, None, None, None))
            continue
        second = ts[1]
        w = welch(best.rates, second.rates)
        gain = best.per_hour / second.per_hour - 1
        p = w.p if w else None
        sig = w.significant if w else None
        out.append(Verdict(host, phase, best.layout, second.layout, gain, p, sig))
    return out


def _changes(new: list[Row], old: list[Row]) -> list[Change]:
    olds = {(r.layout, r.name): r for r in old}
    out = []
    for r in new:
        o = olds.get((r.layout, r.name))
        if o is None or r.summary is None or o.summary is None or o.summary.mean == 0:
            continue
        ch, err = relative_change(r.summary, o.summary)
        w = welch(r.values, o.values)
        out.append(
            Change(r.layout, r.name, o.summary.mean, r.summary.mean, ch, err, w.p if w else None)
        )
    return out


def build_report(data: dict[str, Any], other: dict[str, Any] | None = None) -> Report:
    notes: list[str] = []
    rows = _rows(data)
    tp = _throughput(data, notes)
    rep = Report(str(data.get("campaign", "")), rows, tp, _verdicts(tp), notes=notes)
    if other is not None:
        rep.changes = _changes(rows, _rows(other))
        rep.compared_with = str(other.get("campaign", ""))
        if not rep.changes:
            notes.append("nothing to compare: no layout and phase in common")
    for row in rows:
        if row.summary and row.summary.outliers:
            notes.append(
                f"{row.layout} {row.name}: {len(row.summary.outliers)} outlier(s) "
                f"(modified Z-score > {10} MAD-sigma): "
                + ", ".join(row.files[i] for i in row.summary.outliers)
            )
    return rep
