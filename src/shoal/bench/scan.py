"""Finding the lines of a log that some pattern matches, fast: the file is
mapped and searched in windows of whole lines, each pattern's longest literal
with mmap.find (the C substring search), and only the lines it lands in are
decoded (invalid UTF-8 replaced) and tried against the full regexes. A
pattern with no usable literal is searched with its regex in the decoded
block, which is correct but slower. Large inputs are scanned in ranges by
one process per usable CPU."""

from __future__ import annotations

import mmap
import multiprocessing
import os
import re
import threading
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BLOCK = 16 << 20
COUNT_STEP = 1 << 20
PARALLEL_FROM = 64 << 20  # below this a process pool costs more than it saves
RANGE_MIN = 32 << 20
MAX_WORKERS = 8
MIN_LITERAL = 4  # shorter literals hit too often to pay off
_SPECIAL_ESCAPES = set("AbBdDsSwWZ0123456789nrtfvaxuUN")


def _skip_class(p: str, i: int) -> int:
    """Index after the character class that starts at p[i] == "["."""
    i += 1
    if i < len(p) and p[i] == "^":
        i += 1
    if i < len(p) and p[i] == "]":
        i += 1
    while i < len(p) and p[i] != "]":
        i += 2 if p[i] == "\\" else 1
    return i + 1


def _skip_group(p: str, i: int) -> int:
    depth = 0
    while i < len(p):
        ch = p[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "[":
            i = _skip_class(p, i)
            continue
        depth += ch == "("
        depth -= ch == ")"
        i += 1
        if depth == 0:
            return i
    return i


def literal_of(pattern: str) -> str | None:
    """The longest run of plain characters that every match of ``pattern``
    contains, or None when there is none worth searching for. Conservative:
    anything unsure ends a run."""
    if pattern.startswith("(?") and re.match(r"\(\?[aiLmsux]+\)", pattern):
        return None  # flags (case-insensitive...) change what a literal matches
    runs: list[str] = []
    cur: list[str] = []

    def brk() -> None:
        if cur:
            runs.append("".join(cur))
            cur.clear()

    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "|":
            return None
        if ch in "*?{" or (ch == "+" and not cur):
            if cur:
                cur.pop()  # the atom before may occur zero times
            brk()
            i += 1
            if ch == "{":
                while i < len(pattern) and pattern[i] != "}":
                    i += 1
                i += 1
            continue
        if ch == "+":
            brk()  # the char before occurs at least once: it stays
            i += 1
            continue
        if ch == "\\" and i + 1 < len(pattern):
            nxt = pattern[i + 1]
            if nxt.isalnum() or nxt in _SPECIAL_ESCAPES:
                brk()
            else:
                cur.append(nxt)
            i += 2
            continue
        if ch == "[":
            brk()
            i = _skip_class(pattern, i)
            continue
        if ch == "(":
            brk()
            i = _skip_group(pattern, i)
            continue
        if ch in ".^$)":
            brk()
            i += 1
            continue
        cur.append(ch)
        i += 1
    brk()
    # a quantifier right after a run removed its last char already
    best = max(runs, key=len, default="")
    return best if len(best) >= MIN_LITERAL else None


@dataclass
class Line:
    number: int  # 1-based
    text: str
    hits: list[int]  # indices of the patterns that match it


class Scanner:
    """Lines matching any of ``patterns`` (Python regexes, searched per line)."""

    def __init__(self, patterns: list[str]) -> None:
        self.regexes = [re.compile(p) for p in patterns]
        self.literals: list[bytes] = []
        self.slow: list[re.Pattern[str]] = []
        for p in dict.fromkeys(patterns):
            lit = literal_of(p)
            if lit is None:
                self.slow.append(re.compile(p, re.MULTILINE))
            elif lit.encode() not in self.literals:
                self.literals.append(lit.encode())

    def _literal_starts(self, buf: Any, lo: int, hi: int) -> list[int]:
        """Offsets of the lines in buf[lo:hi] holding some pattern's literal."""
        starts: set[int] = set()
        for lit in self.literals:
            pos = buf.find(lit, lo, hi)
            while pos >= 0:
                nl = buf.rfind(b"\n", lo, pos)
                starts.add(lo if nl < 0 else nl + 1)
                end = buf.find(b"\n", pos, hi)
                if end < 0:
                    break
                pos = buf.find(lit, end + 1, hi)
        return sorted(starts)

    def lines(self, path: Path) -> list[Line]:
        """Matching lines of the file, in order."""
        found, _ = self.scan_range(path, 0, path.stat().st_size)
        return found

    def scan_range(self, path: Path, lo: int, hi: int) -> tuple[list[Line], int]:
        """Matching lines of the lines that start in [lo, hi) (numbered from 1
        at the first of them), and how many newlines those lines hold. The
        file is mapped, not read: the page cache is searched in place."""
        out: list[Line] = []
        with path.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                return out, 0
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                start, end = _boundary(buf, lo, size), _boundary(buf, hi, size)
                arr = _bytes_array(buf)
                number = 1
                while start < end:
                    w = start + BLOCK
                    nl = buf.find(b"\n", w, end) if w < end else -1
                    stop = end if w >= end or nl < 0 else nl + 1
                    number += self._window(buf, arr, start, stop, number, out)
                    start = stop
                del arr  # the map cannot close while numpy holds a view
        return out, number - 1

    def _window(self, buf: Any, arr: Any, lo: int, hi: int, number: int, out: list[Line]) -> int:
        """Append the matching lines of buf[lo:hi] (whole lines); returns its newline count."""
        found: dict[int, str] = {}  # line index in the window -> its text
        n, counted = 0, lo
        for start in self._literal_starts(buf, lo, hi):
            n += _newlines(arr, counted, start)
            counted = start
            end = buf.find(b"\n", start, hi)
            found[n] = buf[start : end if end >= 0 else hi].decode(errors="replace")
        total = n + _newlines(arr, counted, hi)
        if self.slow:
            text = buf[lo:hi].decode(errors="replace")  # same newlines as the bytes
            n = last = 0
            for p in sorted(m.start() for rx in self.slow for m in rx.finditer(text)):
                n += text.count("\n", last, p)
                last = p
                if n not in found:
                    end = text.find("\n", p)
                    found[n] = text[text.rfind("\n", 0, p) + 1 : end if end >= 0 else len(text)]
        for n in sorted(found):
            line = found[n].removesuffix("\r")
            hits = [i for i, rx in enumerate(self.regexes) if rx.search(line)]
            if hits:
                out.append(Line(number + n, line, hits))
        return total


def _boundary(buf: Any, pos: int, size: int) -> int:
    """The start of the first line that starts at or after ``pos``."""
    if pos <= 0:
        return 0
    if pos >= size:
        return size
    nl = buf.find(b"\n", pos - 1)
    return size if nl < 0 else nl + 1


def _bytes_array(buf: Any) -> Any:
    import numpy as np

    return np.frombuffer(buf, dtype=np.uint8)


def _newlines(arr: Any, lo: int, hi: int) -> int:
    """Newlines in arr[lo:hi]: numpy in cache-sized steps, several times
    faster than bytes.count's byte loop."""
    import numpy as np

    n = 0
    for i in range(lo, hi, COUNT_STEP):
        n += int(np.count_nonzero(arr[i : min(i + COUNT_STEP, hi)] == 10))
    return n


def _scan_task(patterns: list[str], path: str, lo: int, hi: int) -> tuple[list[Line], int]:
    return Scanner(patterns).scan_range(Path(path), lo, hi)


def scan_files(patterns: list[str], paths: list[Path]) -> Iterator[tuple[Path, list[Line]]]:
    """Each file's matching lines, in file order. Large inputs are cut into
    ranges at line boundaries and scanned by one process per usable CPU."""
    sizes = [p.stat().st_size for p in paths]
    workers = min(len(os.sched_getaffinity(0)), MAX_WORKERS)
    if sum(sizes) < PARALLEL_FROM or workers < 2:
        scanner = Scanner(patterns)
        for p in paths:
            yield p, scanner.lines(p)
        return
    step = max(RANGE_MIN, sum(sizes) // (workers * 4))
    tasks = [(i, lo, min(lo + step, size)) for i, size in enumerate(sizes)
             for lo in range(0, max(size, 1), step)]  # fmt: skip
    # fork is the cheap start, but unsafe beside other threads (grpc's): spawn then
    ctx = multiprocessing.get_context("fork" if threading.active_count() == 1 else "spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        futures = [pool.submit(_scan_task, patterns, str(paths[i]), lo, hi) for i, lo, hi in tasks]
        done = [f.result() for f in futures]
    at = 0
    for i, p in enumerate(paths):
        lines: list[Line] = []
        base = 0
        while at < len(tasks) and tasks[at][0] == i:
            found, count = done[at]
            lines += [Line(ln.number + base, ln.text, ln.hits) for ln in found]
            base += count
            at += 1
        yield p, lines
