"""The log scanner: the literal every match must contain, the lines found by
literal and by regex alike, lines across block edges, bytes that are not
UTF-8."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from shoal.bench import scan
from shoal.bench.scan import Scanner, literal_of


@pytest.mark.parametrize(
    ("pattern", "literal"),
    [
        ("seal_pre_commit_phase2_all_zero: start", "seal_pre_commit_phase2_all_zero: start"),
        (r"got groth params \(.*\) while sealing", "got groth params ("),
        (r"\[benchy::force\] p34 disabled", "[benchy::force] p34 disabled"),
        (r"^\d+ phase done$", " phase done"),
        ("abc?defgh", "defgh"),
        ("ab+cdef", "cdef"),
        ("x{2}yyyy", "yyyy"),
        (r"(?P<n>\d+) items[0-9]", " items"),
        ("(?i)hello world", None),
        ("foo|barbaz", None),
        (r"\d+\s+\w+", None),
    ],
)
def test_the_literal_of_a_pattern(pattern: str, literal: str | None) -> None:
    assert literal_of(pattern) == literal
    if literal is not None:  # every match contains it
        for m in re.finditer(pattern, "x 12 phase done got groth params (7) while sealing"):
            assert literal in m.group(0)


def lines(tmp_path: Path, data: bytes, patterns: list[str]) -> list[tuple[int, str, list[int]]]:
    f = tmp_path / "x.log"
    f.write_bytes(data)
    return [(ln.number, ln.text, ln.hits) for ln in Scanner(patterns).lines(f)]


def test_lines_by_literal_and_by_regex_in_order(tmp_path: Path) -> None:
    data = b"a\nphase one start\nnoise 12\nphase one end\n42 done\nlast start"
    got = lines(tmp_path, data, ["one start", "one end", r"^\d+ done$", "start$"])
    assert got == [
        (2, "phase one start", [0, 3]),
        (4, "phase one end", [1]),
        (5, "42 done", [2]),
        (6, "last start", [3]),
    ]


def test_lines_that_straddle_block_edges(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scan, "BLOCK", 7)
    data = b"".join(b"line %d\n" % i for i in range(50)) + b"the marker here\n" + b"x" * 40
    data += b" marker in a long last line"
    got = lines(tmp_path, data, ["marker"])
    assert [(n, t[:15]) for n, t, _ in got] == [(51, "the marker here"), (52, "x" * 15)]


def test_bytes_that_are_not_utf8_are_replaced_not_fatal(tmp_path: Path) -> None:
    data = b"caf\xe9 \xff\xfe phase start\r\n\xc3\x28 end\n"
    got = lines(tmp_path, data, ["phase start", r"\(\s+end"])
    assert got == [(1, "caf\ufffd \ufffd\ufffd phase start", [0]), (2, "\ufffd( end", [1])]


def test_a_regex_only_pattern_finds_the_same_lines_as_re(tmp_path: Path) -> None:
    text = "".join(f"{i} {'ok' if i % 7 else 'bad'}\n" for i in range(200))
    got = lines(tmp_path, text.encode(), [r"^\d+ bad$"])
    want = [i + 1 for i, ln in enumerate(text.splitlines()) if re.search(r"^\d+ bad$", ln)]
    assert [n for n, _, _ in got] == want


def test_ranges_scanned_in_parallel_give_what_one_pass_gives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = []
    for k in range(3):
        f = tmp_path / f"{k}.log"
        body = b"".join(b"noise %d %d\n" % (k, i) for i in range(3000))
        f.write_bytes(body.replace(b"noise %d 1234\n" % k, b"the START here\n") + b"END")
        files.append(f)
    one = {p: Scanner(["START", "END"]).lines(p) for p in files}
    monkeypatch.setattr(scan, "PARALLEL_FROM", 1)
    monkeypatch.setattr(scan, "RANGE_MIN", 1000)  # a range ends mid-line: 1000 bytes
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    many = dict(scan.scan_files(["START", "END"], files))
    assert many == one
    assert [(ln.number, ln.text) for ln in many[files[1]]] == [
        (1235, "the START here"),
        (3001, "END"),
    ]
