"""Readers for the Azure Functions public traces: the 2019 per-minute counts
(with the duration percentiles and app memory files beside them) and the 2021
per-invocation file (app, func, end_timestamp, duration in seconds)."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from shoal.faas.model import Function, Trace, TraceError

INVOCATIONS = "invocations_per_function_md.anon.d*.csv"
DURATIONS = "function_durations_percentiles.anon.d*.csv"
MEMORY = "app_memory_percentiles.anon.d*.csv"
MINUTES = 1440
INV_HEADER = ["HashOwner", "HashApp", "HashFunction", "Trigger"] + [
    str(m) for m in range(1, MINUTES + 1)
]
DUR_PCT = ["0", "1", "25", "50", "75", "99", "100"]
DUR_HEADER = ["HashOwner", "HashApp", "HashFunction", "Average", "Count", "Minimum", "Maximum"] + [
    f"percentile_Average_{p}" for p in DUR_PCT
]
MEM_PCT = ["1", "5", "25", "50", "75", "95", "99", "100"]
MEM_HEADER = ["HashOwner", "HashApp", "SampleCount", "AverageAllocatedMb"] + [
    f"AverageAllocatedMb_pct{p}" for p in MEM_PCT
]
NEW_HEADER = ["app", "func", "end_timestamp", "duration"]
DEFAULT_MEMORY_MB = 256.0
DEFAULT_DURATION_S = 1.0


def _rows(path: Path, header: list[str]) -> Iterator[tuple[int, list[str]]]:
    """(line, fields) after checking the header and every row's width."""
    try:
        f = path.open(newline="")
    except OSError as e:
        raise TraceError(path, 0, 0, f"cannot read: {e.strerror}") from None
    with f:
        reader = csv.reader(f)
        try:
            got = next(reader, None)
            if got is None:
                raise TraceError(path, 1, 1, "empty file, expected a header")
            for i, want in enumerate(header):
                if i >= len(got) or got[i].strip() != want:
                    seen = got[i] if i < len(got) else "end of line"
                    raise TraceError(path, 1, i + 1, f"expected header {want!r}, got {seen!r}")
            for fields in reader:
                if not fields:
                    continue
                if len(fields) != len(header):
                    col = min(len(fields), len(header)) + 1
                    raise TraceError(
                        path, reader.line_num, col,
                        f"{len(fields)} fields, expected {len(header)}",
                    )  # fmt: skip
                yield reader.line_num, fields
        except csv.Error as e:
            raise TraceError(path, reader.line_num, 1, f"malformed CSV: {e}") from None


def _number(path: Path, line: int, col: int, text: str, integer: bool = False) -> float:
    try:
        v = int(text) if integer else float(text)
    except ValueError:
        kind = "an integer" if integer else "a number"
        raise TraceError(path, line, col, f"expected {kind}, got {text!r}") from None
    if v < 0 or v != v:
        raise TraceError(path, line, col, f"expected a non-negative number, got {text!r}")
    return float(v)


def _day(path: Path) -> int:
    m = re.search(r"\.d(\d+)\.csv$", path.name)
    return int(m.group(1)) if m else 1


def read_2019(where: Path, *, seed: int = 0, default_memory_mb: float = DEFAULT_MEMORY_MB) -> Trace:
    """Every day file in a directory (or one invocations file and its siblings);
    day dNN starts at (NN - 1) days. Counts in a minute are spread uniformly."""
    folder = where if where.is_dir() else where.parent
    inv_files = sorted(folder.glob(INVOCATIONS)) if where.is_dir() else [where]
    if not inv_files:
        raise TraceError(where, 0, 0, f"no {INVOCATIONS} file here")
    first_day = min(_day(p) for p in inv_files)
    durs: dict[tuple[str, str], list[float]] = {}
    for p in sorted(folder.glob(DURATIONS)):
        for line, r in _rows(p, DUR_HEADER):
            vals = [_number(p, line, 8 + i, r[7 + i]) / 1000.0 for i in range(len(DUR_PCT))]
            durs.setdefault((r[1], r[2]), vals)
    mem: dict[str, float] = {}
    for p in sorted(folder.glob(MEMORY)):
        for line, r in _rows(p, MEM_HEADER):
            mem.setdefault(r[1], _number(p, line, 4, r[3]))
    index: dict[tuple[str, str], int] = {}
    functions: list[Function] = []
    minute_idx: list[np.ndarray] = []
    minute_cnt: list[np.ndarray] = []
    owners: list[int] = []
    for p in inv_files:
        offset = (_day(p) - first_day) * MINUTES
        for line, r in _rows(p, INV_HEADER):
            key = (r[1], r[2])
            if key not in index:
                index[key] = len(functions)
                m = mem.get(r[1], default_memory_mb)
                functions.append(Function(f"{r[1][:10]}/{r[2][:10]}", r[1], m, r[3]))
            try:
                counts = np.array(r[4:], dtype=np.int64)
            except ValueError:
                for c, text in enumerate(r[4:], start=5):
                    _number(p, line, c, text, integer=True)
                raise
            if (counts < 0).any():
                c = int(np.argmax(counts < 0)) + 5
                raise TraceError(p, line, c, f"negative count {r[c - 1]!r}")
            nz = np.nonzero(counts)[0]
            minute_idx.append(nz + offset)
            minute_cnt.append(counts[nz])
            owners.append(index[key])
    rng = np.random.default_rng(seed)
    n = np.array([c.sum() for c in minute_cnt], dtype=np.int64)
    if not len(n) or n.sum() == 0:
        return Trace(functions, np.zeros(0), np.zeros(0, np.int64), np.zeros(0))
    minutes = np.concatenate([np.repeat(i, c) for i, c in zip(minute_idx, minute_cnt, strict=True)])
    func = np.repeat(np.array(owners, dtype=np.int64), n)
    times = minutes * 60.0 + rng.uniform(0.0, 60.0, len(minutes))
    keys = list(index)
    durations = np.empty(len(func))
    qs = np.array([0.0, 0.01, 0.25, 0.5, 0.75, 0.99, 1.0])
    for fi, key in enumerate(keys):
        sel = func == fi
        pct = durs.get(key)
        if pct is None:
            durations[sel] = DEFAULT_DURATION_S
        else:  # the percentile CDF, linearly between the published points
            durations[sel] = np.interp(rng.random(int(sel.sum())), qs, np.maximum.accumulate(pct))
    return Trace(functions, times, func, durations)


def read_2021(path: Path, *, default_memory_mb: float = DEFAULT_MEMORY_MB) -> Trace:
    """One call per line; start = end - duration, times from the first start.
    App memory comes from an app_memory_percentiles file beside it, if any."""
    mem: dict[str, float] = {}
    for p in sorted(path.parent.glob(MEMORY)):
        for line, r in _rows(p, MEM_HEADER):
            mem.setdefault(r[1], _number(p, line, 4, r[3]))
    index: dict[tuple[str, str], int] = {}
    functions: list[Function] = []
    ends: list[float] = []
    dur: list[float] = []
    func: list[int] = []
    for line, r in _rows(path, NEW_HEADER):
        key = (r[0], r[1])
        if key not in index:
            index[key] = len(functions)
            functions.append(
                Function(f"{r[0][:10]}/{r[1][:10]}", r[0], mem.get(r[0], default_memory_mb))
            )
        ends.append(_number(path, line, 3, r[2]))
        dur.append(_number(path, line, 4, r[3]))
        func.append(index[key])
    e, d = np.array(ends), np.array(dur)
    starts = e - d
    if len(starts):
        starts -= starts.min()
    return Trace(functions, starts, np.array(func, dtype=np.int64), d)


def load_trace(path: Path, *, seed: int = 0) -> Trace:
    """A 2019 directory or invocations file, or a 2021 per-invocation CSV
    (or a directory holding exactly one such other CSV)."""
    if not path.exists():
        raise TraceError(path, 0, 0, "no such file or directory")
    if path.is_dir():
        if any(path.glob(INVOCATIONS)):
            return read_2019(path, seed=seed)
        others = [p for p in sorted(path.glob("*.csv")) if not p.match(MEMORY)]
        if len(others) != 1:
            raise TraceError(path, 0, 0, "neither Azure 2019 files nor one 2021 CSV here")
        path = others[0]
    if path.match(INVOCATIONS):
        return read_2019(path, seed=seed)
    return read_2021(path)
