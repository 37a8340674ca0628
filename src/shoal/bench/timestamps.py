"""Where a log line's time is and how to read it: a strftime format (found in
the line through a regex made from the format), ISO-8601 anywhere in the line,
or ``capture``: the ISO-8601 stamp shoal puts at the start of every line it
records. A time without an offset is read in the campaign's time zone."""

from __future__ import annotations

import re
from datetime import datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

ISO = "iso8601"
CAPTURE = "capture"

# strftime directive -> what it matches (strptime's own set)
_DIRECTIVES = {
    "Y": r"\d{4}",
    "y": r"\d{2}",
    "m": r"\d{1,2}",
    "d": r"\d{1,2}",
    "H": r"\d{1,2}",
    "I": r"\d{1,2}",
    "M": r"\d{1,2}",
    "S": r"\d{1,2}",
    "f": r"\d{1,6}",
    "j": r"\d{1,3}",
    "p": r"(?:AM|PM|am|pm)",
    "b": r"[A-Za-z]{3}",
    "B": r"[A-Za-z]+",
    "a": r"[A-Za-z]{3}",
    "A": r"[A-Za-z]+",
    "z": r"(?:Z|[+-]\d{2}:?\d{2})",
    "Z": r"[A-Za-z]{1,5}",
    "%": "%",
}
_ISO_RE = r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d{1,9})?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?"


def format_regex(fmt: str) -> str:
    """The regex a strftime format's output matches; ValueError on an unknown directive."""
    out, i = [], 0
    while i < len(fmt):
        ch = fmt[i]
        if ch == "%":
            if i + 1 >= len(fmt) or fmt[i + 1] not in _DIRECTIVES:
                bad = fmt[i : i + 2]
                raise ValueError(f"timestamp format {fmt!r}: {bad!r} is not a strptime directive")
            out.append(_DIRECTIVES[fmt[i + 1]])
            i += 2
            continue
        out.append(r"\s+" if ch.isspace() else re.escape(ch))
        i += 1
    if not any(d in fmt for d in ("%Y", "%y", "%H", "%s")):
        raise ValueError(f"timestamp format {fmt!r} has no date or hour directive")
    return "".join(out)


def zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise ValueError(f"unknown time zone {name!r} (an IANA name: UTC, Europe/Paris)") from e


class Stamp:
    """Finds and reads the time in one line."""

    def __init__(self, spec: str, tz: str = "UTC") -> None:
        self.spec = spec
        self.tz = zone(tz)
        if spec == ISO:
            self._re = re.compile(_ISO_RE)
        elif spec == CAPTURE:
            self._re = re.compile(r"^(?:" + _ISO_RE + r")")
        else:
            self._re = re.compile(format_regex(spec))

    def find(self, line: str) -> datetime | None:
        """The line's time (aware), or None when the line carries none."""
        for m in self._re.finditer(line):
            text = m.group(0)
            try:
                if self.spec in (ISO, CAPTURE):
                    t = datetime.fromisoformat(text.replace(",", "."))
                else:
                    t = datetime.strptime(text, self.spec)
            except ValueError:
                continue  # looked like a time, was not one (month 13): try the next
            return t if t.tzinfo is not None else t.replace(tzinfo=self.tz)
        return None
