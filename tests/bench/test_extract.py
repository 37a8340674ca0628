"""`shoal bench parse` on logs that exist: grouping by file name, several
phases per file, a phase that occurs more than once, an end that never came,
time zones, capture stamps, metrics, and a pattern that matches nowhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shoal.bench import parse_campaign, parse_logs
from shoal.bench.campaign import Campaign
from shoal.errors import UsageError

PHASES = """
[parse]
timestamp = "%Y-%m-%d %H:%M:%S"
{extra}
[[phases]]
name = "p2"
start = 'seal_pre_commit_phase2_all_zero: start'
end = 'p34 disabled'

[[phases]]
name = "p4"
start = 'got groth params \\(.*\\) while sealing'
end = 'seal_commit_phase2:finish'
"""


def c(extra: str = "") -> Campaign:
    return parse_campaign(PHASES.replace("{extra}", extra), "phases.toml")


def line(t: str, text: str, mod: str = "filecoin_proofs::api::seal_pledge") -> str:
    return f"thread_id: ThreadId(1) {t} INFO [{mod}] {text}\n"


def benchy(p2: tuple[str, str | None], p4: tuple[str, str] | None = None) -> str:
    out = line("2020-07-19 02:30:00", "benchy force --p2")
    out += line(p2[0], "seal_pre_commit_phase2_all_zero: start")
    out += line(p2[0], "generating tree c")
    if p2[1]:
        out += line(p2[1], "p34 disabled", "benchy::force")
    if p4:
        out += line(p4[0], "got groth params (32GiB) while sealing")
        out += line(p4[1], "seal_commit_phase2:finish")
    return out


def write(d: Path, name: str, text: str | bytes) -> None:
    p = d / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(text.encode() if isinstance(text, str) else text)


GROUP = r"benchy-(?P<phase>p\d)-(?P<layout>\d+cpu)-(?P<rep>\d+)"


def test_runs_grouped_by_file_name_with_an_end_that_never_came(tmp_path: Path) -> None:
    write(tmp_path, "benchy-p2-46cpu-1.log", benchy(("2020-07-19 02:35:20", "2020-07-19 04:45:50")))
    write(tmp_path, "benchy-p2-46cpu-2.log", benchy(("2020-07-19 05:00:00", "2020-07-19 07:00:30")))
    write(tmp_path, "benchy-p2-23cpu-1.log", benchy(("2020-07-19 02:35:20", None)))
    p = parse_logs([str(tmp_path / "*.log")], c(), GROUP)
    got = sorted((r.group["layout"], r.group["rep"], r.phase, r.status, r.seconds) for r in p.runs)
    assert got == [
        ("23cpu", "1", "p2", "incomplete", None),
        ("46cpu", "1", "p2", "complete", 2 * 3600 + 10 * 60 + 30),
        ("46cpu", "2", "p2", "complete", 2 * 3600 + 30),
    ]  # the file name says p2: p4 is not looked for in them
    (bad,) = [r for r in p.runs if r.status == "incomplete"]
    assert bad.reason == "no end line (started at line 2)" and bad.seconds is None


def test_several_phases_in_a_file_and_a_phase_that_occurs_twice(tmp_path: Path) -> None:
    text = benchy(
        ("2020-07-19 01:00:00", "2020-07-19 01:10:00"),
        ("2020-07-19 01:20:00", "2020-07-19 01:50:00"),
    )
    text += benchy(("2020-07-19 02:00:00", "2020-07-19 02:05:00"))
    write(tmp_path, "all.log", text)
    p = parse_logs([str(tmp_path / "all.log")], c())
    assert [(r.phase, r.occurrence, r.seconds) for r in p.runs] == [
        ("p2", 1, 600.0),
        ("p2", 2, 300.0),
        ("p4", 1, 1800.0),
    ]
    assert [(r.start_line, r.end_line) for r in p.runs if r.phase == "p2"] == [(2, 4), (8, 10)]


def test_a_restart_before_the_end_leaves_the_first_incomplete(tmp_path: Path) -> None:
    text = line("2020-07-19 01:00:00", "seal_pre_commit_phase2_all_zero: start")
    text += line("2020-07-19 01:30:00", "seal_pre_commit_phase2_all_zero: start")
    text += line("2020-07-19 01:40:00", "p34 disabled")
    write(tmp_path, "a.log", text)
    p = parse_logs([str(tmp_path / "a.log")], c())
    assert [(r.status, r.seconds, r.reason) for r in p.runs if r.phase == "p2"] == [
        ("incomplete", None, "started again at line 2 before its end"),
        ("complete", 600.0, ""),
    ]


def test_time_zones_and_a_daylight_saving_change(tmp_path: Path) -> None:
    # Europe/Paris went from +02:00 to +01:00 at 03:00 local on 2020-10-25
    write(tmp_path, "dst.log", benchy(("2020-10-25 02:30:00", "2020-10-25 03:30:00")))
    p = parse_logs([str(tmp_path / "dst.log")], c('timezone = "Europe/Paris"'))
    (r,) = [r for r in p.runs if r.phase == "p2"]
    # 02:30 CEST is 00:30 UTC, 03:30 CET is 02:30 UTC: two hours, not the wall clock's one
    assert r.seconds == 7200.0
    assert r.start == "2020-10-25T02:30:00+02:00"
    iso = parse_campaign(PHASES.replace('"%Y-%m-%d %H:%M:%S"', '"iso8601"').replace("{extra}", ""))
    text = "2020-07-19T02:00:00+02:00 seal_pre_commit_phase2_all_zero: start\n"
    text += "2020-07-19T00:30:00.5Z p34 disabled\n"
    write(tmp_path, "iso.log", text)
    p = parse_logs([str(tmp_path / "iso.log")], iso)
    assert [r.seconds for r in p.runs if r.phase == "p2"] == [1800.5]


def test_capture_stamps_for_a_tool_that_prints_no_time(tmp_path: Path) -> None:
    cap = parse_campaign(PHASES.replace('"%Y-%m-%d %H:%M:%S"', '"capture"').replace("{extra}", ""))
    text = "2026-12-02T01:00:00.250000+00:00 seal_pre_commit_phase2_all_zero: start\n"
    text += "2026-12-02T01:00:02.000000+00:00 p34 disabled at 2020-01-01 00:00:00\n"
    write(tmp_path, "cap.log", text)
    (r,) = [r for r in parse_logs([str(tmp_path / "cap.log")], cap).runs if r.phase == "p2"]
    assert r.seconds == 1.75


def test_a_line_without_its_time_makes_the_run_incomplete(tmp_path: Path) -> None:
    text = line("2020-07-19 01:00:00", "seal_pre_commit_phase2_all_zero: start")
    text += "p34 disabled (no time here)\n"
    write(tmp_path, "a.log", text)
    (r,) = [r for r in parse_logs([str(tmp_path / "a.log")], c()).runs if r.phase == "p2"]
    assert (r.status, r.reason) == ("incomplete", "no %Y-%m-%d %H:%M:%S time in end line 2")


def test_non_utf8_lines_do_not_stop_the_parse(tmp_path: Path) -> None:
    text = benchy(("2020-07-19 01:00:00", "2020-07-19 01:00:09")).encode()
    write(tmp_path, "a.log", b"\xff\xfe garbage \xe9\n" + text.replace(b"generating", b"g\xe9n"))
    (r,) = [r for r in parse_logs([str(tmp_path / "a.log")], c()).runs if r.phase == "p2"]
    assert r.seconds == 9.0


def test_a_phase_that_matches_in_no_log_is_a_warning(tmp_path: Path) -> None:
    write(tmp_path, "a.log", benchy(("2020-07-19 01:00:00", "2020-07-19 01:00:09")))
    p = parse_logs([str(tmp_path / "a.log")], c())
    assert p.warnings == ["start pattern of phase p4 matched in 0 of 1 logs"]


def test_patterns_that_match_in_no_log_are_an_error(tmp_path: Path) -> None:
    for i in range(12):
        write(tmp_path, f"benchy-p1-{i}cpu-1.log", line("2020-07-19 01:00:00", "p34 disabled"))
    with pytest.raises(UsageError) as e:
        parse_logs([str(tmp_path / "*.log")], c())
    assert str(e.value) == (
        "start pattern of phase p2 matched in 0 of 12 logs; "
        "start pattern of phase p4 matched in 0 of 12 logs"
    )


def test_no_file_and_a_bad_group_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no log file matches"):
        parse_logs([str(tmp_path / "*.log")], c())
    write(tmp_path, "a.log", "x\n")
    with pytest.raises(UsageError, match=r"--group '\(\?P<x' does not compile"):
        parse_logs([str(tmp_path / "*.log")], c(), "(?P<x")
    with pytest.raises(UsageError, match="has no named group"):
        parse_logs([str(tmp_path / "*.log")], c(), r"(\d+)")


def test_metrics_from_a_regex_and_from_the_json_report(tmp_path: Path) -> None:
    camp = parse_campaign(
        PHASES.replace("{extra}", "")
        + """
[[metrics]]
name = "proofs"
regex = 'proofs: (?P<value>\\d+)'
[[metrics]]
name = "p2-wall"
json = "timings.p2-wall-time-ms"
scale = 0.001
unit = "s"
"""
    )
    text = benchy(("2020-07-19 01:00:00", "2020-07-19 01:00:09")) + "proofs: 3\nproofs: 5\n"
    text += json.dumps({"timings": {"p2-wall-time-ms": 9012}}, indent=2) + "\n"
    write(tmp_path, "benchy-p2-4cpu-1.log", text)
    p = parse_logs([str(tmp_path / "*.log")], camp, GROUP)
    assert [(m.metric, m.value, m.unit) for m in p.metrics] == [
        ("proofs", 5.0, ""),
        ("p2-wall", 9.012, "s"),
    ]
