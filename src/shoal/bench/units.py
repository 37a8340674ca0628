"""Sizes ("45GiB"), durations ("6h") and memory formulas
("45GiB + {threads} * 30GiB"), parsed by a small grammar: a formula is never
evaluated as Python."""

from __future__ import annotations

import re
from collections.abc import Mapping

UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "kib": 1 << 10,
    "mib": 1 << 20,
    "gib": 1 << 30,
    "tib": 1 << 40,
}
SECONDS = {"": 1, "s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}
VARIABLES = ("threads", "cores", "slots")  # what a memory formula may name

_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+(?:\.\d+)?)\s*(?P<unit>[A-Za-z]*)|\{(?P<var>\w+)\}|(?P<op>[-+*/()]))"
)


class FormulaError(ValueError):
    """A formula or size that does not parse; the text says where."""


def parse_size(text: str | int) -> int:
    """Bytes from 123, "123", "64GiB", "1.5 GB"."""
    if isinstance(text, int):
        if text < 0:
            raise FormulaError(f"{text}: a size cannot be negative")
        return text
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", text)
    if not m or m.group(2).lower() not in UNITS:
        raise FormulaError(f"{text!r} is not a size (e.g. 4096, 512MiB, 40GiB, 1.5GB)")
    return int(float(m.group(1)) * UNITS[m.group(2).lower()])


def parse_seconds(text: str | float) -> float:
    """Seconds from 90, "90s", "30m", "6h", "1.5d"."""
    if isinstance(text, int | float):
        if text < 0:
            raise FormulaError(f"{text}: a duration cannot be negative")
        return float(text)
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", text)
    if not m or m.group(2).lower() not in SECONDS:
        raise FormulaError(f"{text!r} is not a duration (e.g. 90, 90s, 30m, 6h)")
    return float(m.group(1)) * SECONDS[m.group(2).lower()]


def _tokens(text: str) -> list[tuple[str, str | float]]:
    out: list[tuple[str, str | float]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise FormulaError(f"{text!r}: unexpected {text[pos:].strip()[:10]!r}")
        if m.group("num") is not None:
            unit = m.group("unit").lower()
            if unit not in UNITS:
                raise FormulaError(f"{text!r}: unknown unit {m.group('unit')!r}")
            out.append(("num", float(m.group("num")) * UNITS[unit]))
        elif m.group("var") is not None:
            if m.group("var") not in VARIABLES:
                known = ", ".join("{" + v + "}" for v in VARIABLES)
                raise FormulaError(f"{text!r}: unknown placeholder {{{m.group('var')}}} ({known})")
            out.append(("var", m.group("var")))
        else:
            out.append(("op", m.group("op")))
        pos = m.end()
    return out


class Formula:
    """A checked arithmetic expression over numbers with units and placeholders."""

    def __init__(self, text: str | int) -> None:
        self.text = str(text)
        self._toks = _tokens(self.text) if isinstance(text, str) else [("num", float(text))]
        if not self._toks:
            raise FormulaError("an empty formula")
        # parse once with dummy values so a malformed formula fails at load time
        self._pos = 0
        self._vars: Mapping[str, float] = dict.fromkeys(VARIABLES, 1.0)
        self._expr_all()

    def __call__(self, **values: float) -> int:
        self._pos, self._vars = 0, values
        v = self._expr_all()
        if v < 0:
            raise FormulaError(f"{self.text!r} is negative ({v:.0f}) for {values}")
        return int(v)

    def _expr_all(self) -> float:
        v = self._expr()
        if self._pos != len(self._toks):
            raise FormulaError(f"{self.text!r}: unexpected {self._toks[self._pos][1]!r}")
        return v

    def _peek(self) -> tuple[str, str | float] | None:
        return self._toks[self._pos] if self._pos < len(self._toks) else None

    def _expr(self) -> float:
        v = self._term()
        while (t := self._peek()) is not None and t[1] in ("+", "-"):
            self._pos += 1
            v = v + self._term() if t[1] == "+" else v - self._term()
        return v

    def _term(self) -> float:
        v = self._atom()
        while (t := self._peek()) is not None and t[1] in ("*", "/"):
            self._pos += 1
            rhs = self._atom()
            if t[1] == "/" and rhs == 0:
                raise FormulaError(f"{self.text!r}: division by zero")
            v = v * rhs if t[1] == "*" else v / rhs
        return v

    def _atom(self) -> float:
        t = self._peek()
        if t is None:
            raise FormulaError(f"{self.text!r}: ends too early")
        self._pos += 1
        kind, val = t
        if kind == "num":
            return float(val)
        if kind == "var":
            if val not in self._vars:
                raise FormulaError(f"{self.text!r}: no value for {{{val}}}")
            return float(self._vars[str(val)])
        if val == "(":
            v = self._expr()
            if self._peek() != ("op", ")"):
                raise FormulaError(f"{self.text!r}: missing ')'")
            self._pos += 1
            return v
        if val == "-":
            return -self._atom()
        raise FormulaError(f"{self.text!r}: unexpected {val!r}")


def human(n: float) -> str:
    """1.5 GiB, 512.0 MiB."""
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(n) >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f} B"
