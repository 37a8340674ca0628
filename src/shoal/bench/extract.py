"""Phases and metrics out of existing logs (`shoal bench parse`): files by
glob, grouped by a regex with named groups on their path, each phase's
occurrences paired start -> end in line order. A phase whose end never came
(or whose time could not be read) is "incomplete" with the reason, never a
number."""

from __future__ import annotations

import glob
import json
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shoal.bench.campaign import Campaign
from shoal.bench.scan import scan_files
from shoal.errors import UsageError

JSON_TAIL = 4 << 20  # a log's JSON report is looked for in its last bytes


@dataclass
class Run:
    """One occurrence of a phase in one log."""

    file: str
    group: dict[str, str]
    phase: str
    occurrence: int
    status: str  # "complete" or "incomplete"
    seconds: float | None = None
    start: str | None = None  # ISO-8601
    end: str | None = None
    start_line: int | None = None
    end_line: int | None = None
    reason: str = ""


@dataclass
class MetricValue:
    file: str
    group: dict[str, str]
    metric: str
    value: float
    unit: str


@dataclass
class Parsed:
    campaign: str
    files: list[str]
    runs: list[Run] = field(default_factory=list)
    metrics: list[MetricValue] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    slots: dict[str, int] = field(default_factory=dict)  # per layout, where known

    def to_json(self) -> dict[str, Any]:
        return {"version": 1, "source": "parse", **asdict(self)}

    def save(self, out: Path) -> Path:
        """``out``/runs.json, what `shoal bench report` reads."""
        out.mkdir(parents=True, exist_ok=True)
        p = out / "runs.json"
        p.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        return p


def find_files(patterns: list[str]) -> list[Path]:
    out: dict[str, Path] = {}
    for pat in patterns:
        hits = sorted(glob.glob(pat, recursive=True))
        files = [h for h in hits if Path(h).is_file()]
        if not files:
            raise UsageError(f"no log file matches {pat!r}")
        out.update((h, Path(h)) for h in files)
    return list(out.values())


def group_regex(text: str | None) -> re.Pattern[str] | None:
    if text is None:
        return None
    try:
        rx = re.compile(text)
    except re.error as e:
        raise UsageError(f"--group {text!r} does not compile: {e}") from e
    if not rx.groupindex:
        raise UsageError(f"--group {text!r} has no named group, e.g. (?P<layout>\\d+cpu)")
    return rx


class _Pairing:
    """Start/end events of one phase in one file -> runs."""

    def __init__(self, c: Campaign, phase_index: int, file: str, group: dict[str, str]) -> None:
        self.phase = c.phases[phase_index]
        self.stamp = self.phase.stamp(c.parse)
        self.file, self.group = file, group
        self.runs: list[Run] = []
        self.open: Run | None = None
        self.open_t: datetime | None = None  # in UTC: wall-clock sums in a zone are off
        self.stray_ends = 0

    def _new(self) -> Run:
        return Run(self.file, self.group, self.phase.name, len(self.runs) + 1, "incomplete")

    def start(self, number: int, text: str) -> None:
        if self.open is not None:
            self.open.reason = f"started again at line {number} before its end"
            self.runs.append(self.open)
        r = self._new()
        r.start_line = number
        self.open_t = None
        t = self.stamp.find(text)
        if t is None:
            r.reason = f"no {self.stamp.spec} time in start line {number}"
        else:
            r.start, self.open_t = t.isoformat(), t.astimezone(UTC)
        self.open = r

    def end(self, number: int, text: str) -> None:
        r = self.open
        if r is None:
            self.stray_ends += 1
            return
        self.open = None
        r.end_line = number
        t = self.stamp.find(text)
        if t is not None:
            r.end = t.isoformat()
        if r.reason:
            pass
        elif t is None:
            r.reason = f"no {self.stamp.spec} time in end line {number}"
        elif self.open_t is not None:
            secs = (t.astimezone(UTC) - self.open_t).total_seconds()
            if secs < 0:
                r.reason = "ends before it starts (clock or time zone?)"
            else:
                r.status, r.seconds = "complete", secs
        self.runs.append(r)

    def finish(self) -> list[Run]:
        if self.open is not None:
            self.open.reason = f"no end line (started at line {self.open.start_line})"
            self.runs.append(self.open)
            self.open = None
        return self.runs


def _json_value(path: Path, dotted: str) -> float | None:
    """``dotted`` ("a.b.0.c") in the last JSON object that starts a line near the end."""
    size = path.stat().st_size
    with path.open("rb") as f:
        f.seek(max(0, size - JSON_TAIL))
        tail = f.read().decode(errors="replace")
    dec = json.JSONDecoder()
    pos = len(tail)
    while (pos := tail.rfind("\n{", 0, pos)) >= 0 or tail.startswith("{"):
        at = pos + 1 if pos >= 0 else 0
        try:
            obj: Any = dec.raw_decode(tail, at)[0]
        except ValueError:
            if pos < 0:
                return None
            continue
        for key in dotted.split("."):
            if isinstance(obj, list) and key.isdigit() and int(key) < len(obj):
                obj = obj[int(key)]
            elif isinstance(obj, dict) and key in obj:
                obj = obj[key]
            else:
                return None
        return float(obj) if isinstance(obj, int | float) else None
    return None


def parse_logs(patterns: list[str], c: Campaign, group: str | None = None) -> Parsed:
    if not c.phases and not c.metrics:
        raise UsageError("the campaign names no [[phases]] and no [[metrics]]: nothing to extract")
    grx = group_regex(group)
    files = find_files(patterns)
    out = Parsed(c.name, [str(p) for p in files])
    pats = [p.start for p in c.phases] + [p.end for p in c.phases]
    pats += [m.regex for m in c.metrics if m.regex]
    regexes = [re.compile(x) for x in pats]
    n = len(c.phases)
    regex_metrics = [(i, m) for i, m in enumerate(c.metrics) if m.regex]
    expected = dict.fromkeys((p.name for p in c.phases), 0)
    started = dict.fromkeys(expected, 0)
    ended = dict.fromkeys(expected, 0)
    names = set(expected)
    groups: dict[Path, dict[str, str]] = {}
    for path in files:
        if grx is None:
            groups[path] = {}
        elif (m := grx.search(str(path))) is not None:
            groups[path] = {k: v for k, v in m.groupdict().items() if v is not None}
        else:
            out.warnings.append(f"{path}: does not match --group: left out")
    for path, lines in scan_files(pats, list(groups)):
        g = groups[path]
        only = g.get("phase") if g.get("phase") in names else None
        pairs = [_Pairing(c, i, str(path), g) for i in range(n)]
        last: dict[int, str] = {}
        for line in lines:
            for h in sorted(line.hits, key=lambda h: not n <= h < 2 * n):  # ends first
                if h < 2 * n:
                    pair = pairs[h % n]
                    if only is not None and pair.phase.name != only:
                        continue
                    (pair.end if h >= n else pair.start)(line.number, line.text)
                else:
                    last[h - 2 * n] = line.text
        for pair in pairs:
            name = pair.phase.name
            if only is not None and name != only:
                continue
            runs = pair.finish()
            expected[name] += 1
            started[name] += any(r.start_line for r in runs)
            ended[name] += any(r.end_line for r in runs)
            out.runs.extend(runs)
            if pair.stray_ends:
                out.warnings.append(
                    f"{path}: {pair.stray_ends} end line(s) of {name} with no start"
                )
        for k, (_, metric) in enumerate(regex_metrics):
            if k in last:
                rx = regexes[2 * n + k]
                mm = rx.search(last[k])
                assert mm is not None
                raw = mm.group("value") if "value" in rx.groupindex else mm.group(1)
                _add_metric(out, str(path), g, metric.name, raw, metric.scale, metric.unit)
        for metric in c.metrics:
            if metric.json_path:
                v = _json_value(path, metric.json_path)
                if v is not None:
                    _add_metric(out, str(path), g, metric.name, v, metric.scale, metric.unit)
    _check_counts(out, expected, started, ended)
    out.slots = _slots(out, c)
    return out


def _add_metric(
    out: Parsed, file: str, g: dict[str, str], name: str, raw: str | float, scale: float, unit: str
) -> None:
    try:
        out.metrics.append(MetricValue(file, g, name, float(raw) * scale, unit))
    except ValueError:
        out.warnings.append(f"{file}: metric {name}: {raw!r} is not a number")


def _check_counts(
    out: Parsed, expected: dict[str, int], started: dict[str, int], ended: dict[str, int]
) -> None:
    """A phase no log started is a warning; no phase started anywhere, an error."""
    missing = []
    for name, total in expected.items():
        if total and not started[name]:
            missing.append(f"start pattern of phase {name} matched in 0 of {total} logs")
        elif total and not ended[name]:
            out.warnings.append(f"end pattern of phase {name} matched in 0 of {total} logs")
    if missing and len(missing) == sum(1 for t in expected.values() if t) and not out.metrics:
        raise UsageError("; ".join(missing))
    out.warnings.extend(missing)


def _slots(out: Parsed, c: Campaign) -> dict[str, int]:
    """Slots per layout: the campaign's layout of that name, else how many
    distinct {slot} groups ran together (same layout, rep and host)."""
    seen: dict[str, dict[tuple[str, str], set[str]]] = {}
    for r in out.runs:
        layout = r.group.get("layout", "all")
        key = (r.group.get("rep", ""), r.group.get("host", ""))
        if "slot" in r.group:
            seen.setdefault(layout, {}).setdefault(key, set()).add(r.group["slot"])
        else:
            seen.setdefault(layout, {})
    res = {}
    for layout, per in seen.items():
        lay = c.layout(layout)
        if lay is not None and lay.slots:
            res[layout] = lay.slots
        elif per:
            res[layout] = max(len(s) for s in per.values())
    return res
