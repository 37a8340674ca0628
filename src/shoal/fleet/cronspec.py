"""robfig/cron schedules on top of croniter.

croniter (pallets-eco, maintained) parses and fires the six-field form with
``second_at_beginning=True``; this module adds robfig's extras: ``CRON_TZ=Zone``
prefix, ``?`` (same as ``*``), ``@yearly``..``@hourly`` as six-field
expressions, and ``@every <Go duration>`` (at least 1 s). Invalid input raises
UsageError naming the field; an expression that can never fire (February 30)
is invalid too.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shoal.errors import UsageError

FIELDS = ("second", "minute", "hour", "day-of-month", "month", "day-of-week")
DESCRIPTORS = {
    "@yearly": "0 0 0 1 1 *",
    "@annually": "0 0 0 1 1 *",
    "@monthly": "0 0 0 1 * *",
    "@weekly": "0 0 0 * * 0",
    "@daily": "0 0 0 * * *",
    "@midnight": "0 0 0 * * *",
    "@hourly": "0 0 * * * *",
}
MIN_EVERY = 1.0  # seconds: the scheduler looks twice a second
_DUR = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """A Go duration ("1h30m", "90s", "1.5h") in seconds."""
    pos, total = 0, 0.0
    if not text:
        raise UsageError("@every needs a duration, e.g. @every 1h30m")
    for m in _DUR.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT[m.group(2)]
        pos = m.end()
    if pos != len(text) or total <= 0:
        raise UsageError(f"invalid @every duration {text!r} (use Go syntax such as 1h30m or 90s)")
    return total


@dataclass(frozen=True)
class Schedule:
    expr: str
    tz: dt.tzinfo
    every: float | None = None  # @every: seconds
    fields: str | None = None  # six-field croniter expression

    def next_after(self, after: dt.datetime) -> dt.datetime:
        """The first fire time strictly after ``after`` (returned in UTC)."""
        if self.every is not None:
            # robfig's @every fires every period from when it was scheduled; we
            # anchor on the epoch so restarts keep the same grid.
            ts = after.timestamp()
            n = (ts // self.every + 1) * self.every
            return dt.datetime.fromtimestamp(n, dt.UTC)
        from croniter import croniter

        it = croniter(self.fields, after.astimezone(self.tz), second_at_beginning=True)
        nxt: dt.datetime = it.get_next(dt.datetime)
        return nxt.astimezone(dt.UTC)


def _check_field(index: int, value: str) -> None:
    from croniter import croniter

    probe = ["*"] * 6
    probe[index] = value
    try:
        croniter(" ".join(probe), second_at_beginning=True)
    except Exception as e:  # croniter raises several types for bad fields
        raise UsageError(f"invalid cron expression: {FIELDS[index]} field {value!r}: {e}") from e


def parse(expr: str) -> Schedule:
    text = expr.strip()
    tz: dt.tzinfo = dt.UTC
    if text.startswith(("CRON_TZ=", "TZ=")):
        head, _, text = text.partition(" ")
        zone = head.split("=", 1)[1]
        try:
            tz = ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise UsageError(f"invalid cron expression: unknown time zone {zone!r}") from e
        text = text.strip()
    if text.startswith("@every"):
        every = parse_duration(text[len("@every") :].strip())
        if every < MIN_EVERY:
            raise UsageError(
                f"invalid cron expression {expr!r}: @every must be at least {MIN_EVERY:g}s"
            )
        return Schedule(expr, tz, every=every)
    if text.startswith("@"):
        if text not in DESCRIPTORS:
            raise UsageError(
                f"invalid cron expression: unknown descriptor {text!r}"
                f" (use {', '.join(DESCRIPTORS)} or @every <duration>)"
            )
        text = DESCRIPTORS[text]
    parts = text.split()
    if len(parts) != 6:
        raise UsageError(
            f"invalid cron expression {expr!r}: expected 6 fields"
            f" ({' '.join(FIELDS)}), got {len(parts)}"
        )
    parts = ["*" if p == "?" else p for p in parts]
    for i, p in enumerate(parts):
        _check_field(i, p)
    fields = " ".join(parts)
    from croniter import croniter

    try:
        croniter(fields, second_at_beginning=True)
    except Exception as e:
        raise UsageError(f"invalid cron expression {expr!r}: {e}") from e
    sched = Schedule(expr, tz, fields=fields)
    try:  # valid fields can still name a date that never comes (February 30)
        sched.next_after(dt.datetime.now(dt.UTC))
    except Exception as e:
        raise UsageError(
            f"cron expression {expr!r} can never fire: no date matches its"
            f" day-of-month, month and day-of-week fields ({e})"
        ) from e
    return sched
