"""Finding the lines of a log that some pattern matches, fast: the file is
read in large binary blocks, each pattern's longest literal is searched with
bytes.find (the C substring search), and only the lines it lands in are
decoded (invalid UTF-8 replaced) and tried against the full regexes. A
pattern with no usable literal is searched with its regex in the decoded
block, which is correct but slower."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

BLOCK = 16 << 20
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

    def _literal_starts(self, block: bytes) -> list[int]:
        """Offsets (in block) of the lines holding some pattern's literal."""
        starts: set[int] = set()
        for lit in self.literals:
            pos = block.find(lit)
            while pos >= 0:
                starts.add(block.rfind(b"\n", 0, pos) + 1)
                end = block.find(b"\n", pos)
                if end < 0:
                    break
                pos = block.find(lit, end + 1)
        return sorted(starts)

    def lines(self, path: Path) -> Iterator[Line]:
        """Matching lines of the file, in order."""
        number = 1
        tail = b""
        with path.open("rb") as f:
            while True:
                chunk = f.read(BLOCK)
                block = tail + chunk
                if not chunk:
                    if block:
                        yield from self._block(block, number)
                    return
                cut = block.rfind(b"\n") + 1
                if cut == 0:
                    tail = block  # one line longer than a block: keep reading
                    continue
                yield from self._block(block[:cut], number)
                number += block.count(b"\n", 0, cut)
                tail = block[cut:]

    def _block(self, block: bytes, number: int) -> Iterator[Line]:
        found: dict[int, str] = {}  # line index in the block -> its text
        n = counted = 0
        for start in self._literal_starts(block):
            n += block.count(b"\n", counted, start)
            counted = start
            end = block.find(b"\n", start)
            found[n] = block[start : end if end >= 0 else len(block)].decode(errors="replace")
        if self.slow:
            text = block.decode(errors="replace")  # same newlines as the bytes
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
                yield Line(number + n, line, hits)
