"""A report as tables (lists of cells, for the terminal and Markdown), CSV,
JSON and Markdown files in the results directory."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from shoal.bench.report import Report

SUMMARY_COLUMNS = [
    "layout", "name", "unit", "n", "incomplete", "mean", "stdev", "median", "min", "max", "cv",
    "outliers",
]  # fmt: skip
TERMINAL_COLUMNS = ["layout", "name", "n", "inc", "mean", "sd", "median", "min", "max", "cv", "out"]
THROUGHPUT_COLUMNS = ["host", "layout", "phase", "slots", "per hour", "95% CI"]
CHANGE_COLUMNS = ["layout", "name", "old mean", "new mean", "change", "± (1 sd)", "p (Welch)"]


def num(x: float | None, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if math.isinf(x):
        return "inf"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}" if 0 < abs(x) < 1e-3 else f"{x:.{digits}f}"


def pct(x: float | None, sign: bool = True) -> str:
    if x is None or math.isnan(x):
        return "-"
    return f"{x * 100:+.1f}%" if sign else f"{x * 100:.1f}%"


def summary_rows(rep: Report) -> list[list[str]]:
    out = []
    for r in rep.rows:
        s = r.summary
        if s is None:
            out.append([r.layout, r.name, r.unit, "0", str(r.incomplete), *["-"] * 7])
            continue
        out.append(
            [
                r.layout, r.name, r.unit, str(s.n), str(r.incomplete), num(s.mean), num(s.stdev),
                num(s.median), num(s.min), num(s.max), pct(s.cv, False), str(len(s.outliers)),
            ]
        )  # fmt: skip
    return out


def terminal_rows(rep: Report) -> list[list[str]]:
    """The summary without the unit column: durations are seconds, a metric
    other than seconds carries its unit in its name."""
    out = []
    for cells in summary_rows(rep):
        layout, name, unit, *rest = cells
        out.append([layout, f"{name} ({unit})" if unit not in ("", "s") else name, *rest])
    return out


def throughput_rows(rep: Report) -> list[list[str]]:
    return [
        [
            t.host or "each host", t.layout, t.phase,
            str(t.slots) + ("" if t.slots_known else "?"),
            num(t.per_hour, 2), f"{num(t.low, 2)} .. {num(t.high, 2)}",
        ]
        for t in rep.throughput
    ]  # fmt: skip


def verdict_lines(rep: Report) -> list[str]:
    out = []
    for v in rep.verdicts:
        where = f"{v.host}, " if v.host else ""
        if v.runner_up is None:
            out.append(f"{where}phase {v.phase}: only layout {v.best} has complete runs")
            continue
        if v.significant is None:
            sig = "too few runs to test"
        elif v.significant:
            sig = f"significant (Welch p = {num(v.p)})"
        else:
            sig = f"not significant (Welch p = {num(v.p)})"
        out.append(
            f"{where}phase {v.phase}: layout {v.best} gives the most per host, "
            f"{pct(v.gain)} over {v.runner_up}: {sig}"
        )
    return out


def change_rows(rep: Report) -> list[list[str]]:
    return [
        [c.layout, c.name, num(c.old_mean), num(c.new_mean), pct(c.change),
         pct(c.uncertainty, False), num(c.p)]
        for c in rep.changes
    ]  # fmt: skip


def _md_table(columns: list[str], rows: list[list[str]]) -> str:
    def cell(s: str) -> str:
        return s.replace("|", "\\|")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def markdown(rep: Report) -> str:
    parts = [f"# Campaign {rep.campaign}", "", "## Durations and metrics", ""]
    parts += [_md_table(SUMMARY_COLUMNS, summary_rows(rep)), ""]
    parts += ["## Throughput per host (items per hour, 95% CI)", ""]
    parts += [_md_table(THROUGHPUT_COLUMNS, throughput_rows(rep)), ""]
    parts += [f"- {line}" for line in verdict_lines(rep)] + [""]
    if rep.changes:
        parts += [f"## Change against {rep.compared_with}", ""]
        parts += [_md_table(CHANGE_COLUMNS, change_rows(rep)), ""]
    if rep.notes:
        parts += ["## Notes", ""] + [f"- {n}" for n in rep.notes] + [""]
    return "\n".join(parts)


def write_files(rep: Report, out: Path) -> list[Path]:
    """report.json, report.md, summary.csv, throughput.csv (and changes.csv)."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    p = out / "report.json"
    p.write_text(json.dumps(rep.to_json(), indent=2, default=str) + "\n")
    written.append(p)
    p = out / "report.md"
    p.write_text(markdown(rep))
    written.append(p)
    tables = [
        ("summary.csv", SUMMARY_COLUMNS, _csv_summary(rep)),
        ("throughput.csv", ["host", "layout", "phase", "slots", "per_hour", "low", "high"],
         [[t.host, t.layout, t.phase, t.slots, t.per_hour, t.low, t.high] for t in rep.throughput]),
    ]  # fmt: skip
    if rep.changes:
        tables.append(
            ("changes.csv", ["layout", "name", "old_mean", "new_mean", "change", "sd", "p"],
             [[c.layout, c.name, c.old_mean, c.new_mean, c.change, c.uncertainty, c.p]
              for c in rep.changes])
        )  # fmt: skip
    for name, cols, rows in tables:
        p = out / name
        with p.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(cols)
            w.writerows(rows)
        written.append(p)
    return written


def _csv_summary(rep: Report) -> list[list[object]]:
    out: list[list[object]] = []
    for r in rep.rows:
        s = r.summary
        stats: list[object] = (
            [s.n, r.incomplete, s.mean, s.stdev, s.median, s.min, s.max, s.cv, len(s.outliers)]
            if s
            else [0, r.incomplete, *[""] * 7]
        )
        out.append([r.layout, r.name, r.unit, *stats])
    return out
