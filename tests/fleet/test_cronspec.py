import datetime as dt

import pytest

from shoal.errors import UsageError
from shoal.fleet.cronspec import parse, parse_duration

T0 = dt.datetime(2026, 1, 1, 0, 0, 0, tzinfo=dt.UTC)


def test_six_fields_seconds_first() -> None:
    s = parse("15 30 * * * *")
    assert s.next_after(T0) == dt.datetime(2026, 1, 1, 0, 30, 15, tzinfo=dt.UTC)


def test_names_and_question_mark() -> None:
    s = parse("0 0 9 ? JAN MON-FRI")
    # 2026-01-01 is a Thursday
    assert s.next_after(T0) == dt.datetime(2026, 1, 1, 9, 0, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("expr", "nxt"),
    [
        ("@hourly", dt.datetime(2026, 1, 1, 1, tzinfo=dt.UTC)),
        ("@daily", dt.datetime(2026, 1, 2, tzinfo=dt.UTC)),
        ("@monthly", dt.datetime(2026, 2, 1, tzinfo=dt.UTC)),
        ("@yearly", dt.datetime(2027, 1, 1, tzinfo=dt.UTC)),
        ("@every 1h30m", dt.datetime(2026, 1, 1, 1, 30, tzinfo=dt.UTC)),
    ],
)
def test_descriptors(expr: str, nxt: dt.datetime) -> None:
    assert parse(expr).next_after(T0) == nxt


def test_cron_tz_prefix() -> None:
    s = parse("CRON_TZ=Asia/Tokyo 0 0 9 * * *")
    assert s.next_after(T0) == dt.datetime(2026, 1, 2, 0, 0, tzinfo=dt.UTC)


def test_go_durations() -> None:
    assert parse_duration("1m30s") == 90
    assert parse_duration("1.5h") == 5400
    with pytest.raises(UsageError, match="duration"):
        parse_duration("90 minutes")


@pytest.mark.parametrize(
    ("expr", "field"),
    [
        ("61 * * * * *", "second"),
        ("0 61 * * * *", "minute"),
        ("0 0 25 * * *", "hour"),
        ("0 0 0 32 * *", "day-of-month"),
        ("0 0 0 * FOO *", "month"),
        ("0 0 0 * * MONDAYISH", "day-of-week"),
    ],
)
def test_invalid_names_the_field(expr: str, field: str) -> None:
    with pytest.raises(UsageError, match=f"{field} field"):
        parse(expr)


def test_wrong_field_count_and_unknown_descriptor() -> None:
    with pytest.raises(UsageError, match="expected 6 fields"):
        parse("* * * * *")
    with pytest.raises(UsageError, match="unknown descriptor"):
        parse("@fortnightly")
    with pytest.raises(UsageError, match="time zone"):
        parse("CRON_TZ=Mars/Olympus 0 0 0 * * *")
