"""PNG plots of a report (matplotlib, no display): per phase every run's
duration by layout with its mean, and throughput per host by layout with its
confidence interval."""

from __future__ import annotations

import math
import re
from pathlib import Path

from shoal.bench.report import Report, natural


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def write_plots(rep: Report, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in sorted({r.name for r in rep.rows}):
        rows = sorted([r for r in rep.rows if r.name == name], key=lambda r: natural(r.layout))
        if not any(r.values for r in rows):
            continue
        fig, ax = plt.subplots(figsize=(max(4.0, 1.4 * len(rows) + 2), 4))
        for i, r in enumerate(rows):
            n = len(r.values)
            # spread the runs sideways so that equal values stay visible
            xs = [i + (k - (n - 1) / 2) * min(0.5 / max(n, 1), 0.08) for k in range(n)]
            ax.scatter(xs, r.values, s=18, alpha=0.75, label=None)
            if r.summary:
                ax.hlines(r.summary.mean, i - 0.3, i + 0.3, colors="black", linewidth=1.5)
                for k in r.summary.outliers:
                    ax.scatter([xs[k]], [r.values[k]], s=60, facecolors="none", edgecolors="red")
        ax.set_xticks(range(len(rows)), [f"{r.layout}\n(n={len(r.values)})" for r in rows])
        unit = rows[0].unit
        ax.set_ylabel(f"{name} ({unit})" if unit else name)
        ax.set_title(
            f"{rep.campaign}: {name}\nevery run; line: mean, red ring: outlier", fontsize=10
        )
        ax.set_ylim(bottom=0)
        fig.tight_layout()
        p = out / f"{_safe(name)}-by-layout.png"
        fig.savefig(p, dpi=100)
        plt.close(fig)
        written.append(p)
    for phase in sorted({t.phase for t in rep.throughput}):
        ts = [t for t in rep.throughput if t.phase == phase]
        ts.sort(key=lambda t: (natural(t.host), natural(t.layout)))
        fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(ts) + 2), 4))
        labels = [f"{t.host + ' ' if t.host else ''}{t.layout}" for t in ts]
        ys = [t.per_hour for t in ts]
        lo = [y - t.low if not math.isnan(t.low) else 0 for y, t in zip(ys, ts, strict=True)]
        hi = [
            (t.high - y if math.isfinite(t.high) else y) if not math.isnan(t.high) else 0
            for y, t in zip(ys, ts, strict=True)
        ]
        ax.bar(range(len(ts)), ys, yerr=[lo, hi], capsize=4, color="tab:blue", alpha=0.5)
        for i, t in enumerate(ts):  # every run's own rate, not only the mean
            ax.scatter([i] * len(t.rates), t.rates, s=14, color="black", zorder=3)
        ax.set_xticks(range(len(ts)), labels)
        ax.set_ylabel(f"{phase} per hour per host")
        ax.set_title(f"{rep.campaign}: throughput of {phase}\nper host, 95% CI", fontsize=10)
        fig.tight_layout()
        p = out / f"{_safe(phase)}-throughput.png"
        fig.savefig(p, dpi=100)
        plt.close(fig)
        written.append(p)
    return written
