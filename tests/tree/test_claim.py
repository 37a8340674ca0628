"""Part files that tell a live transfer from a dead one: a real second process
holds the writer's lock, then dies by SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from shoal.tree.claim import PART_SUFFIX, SpoolDirs, claim, held, label, open_existing, sweep

HOLDER = """
import os, sys, time
from pathlib import Path
from shoal.tree.claim import claim
fd = claim(Path(sys.argv[1]), "t" * 32, "holder")
os.write(fd, b"x" * 1000)
print("holding", flush=True)
time.sleep(600)
"""


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """Another process writing .f.tttt.shoal-part in tmp_path/d, holding its lock."""
    d = tmp_path / "d"
    d.mkdir()
    part = d / f".f.{'t' * 12}{PART_SUFFIX}"
    p = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(part)], stdout=subprocess.PIPE, text=True
    )
    assert p.stdout is not None and p.stdout.readline() == "holding\n"
    try:
        yield p, part
    finally:
        p.kill()
        p.wait()


def test_a_claim_is_exclusive_and_labelled(holder: tuple[subprocess.Popen[str], Path]) -> None:
    _, part = holder
    assert claim(part, "t" * 32, "me") is None
    fd = open_existing(part)
    assert fd is not None
    try:
        assert held(fd)
        assert label(fd) == ("t" * 32, "holder")
    finally:
        os.close(fd)
    assert [p.name for p in part.parent.iterdir()] == [part.name]  # no claim debris


def test_sweep_keeps_a_live_writers_part_and_removes_it_once_dead(
    holder: tuple[subprocess.Popen[str], Path],
) -> None:
    p, part = holder
    d = part.parent
    dead_dir = d / f".g.{'u' * 12}.shoal-dir"  # half-extracted, its part gone
    (dead_dir / "sub").mkdir(parents=True)
    (dead_dir / "sub" / "f").write_bytes(b"y" * 500)
    live_dir = d / f".f.{'t' * 12}.shoal-dir"  # the live writer's, being extracted
    live_dir.mkdir()
    assert sweep(d) == [(dead_dir, 500)]
    assert part.exists() and live_dir.exists()
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert sorted(sweep(d)) == sorted([(part, 1000), (live_dir, 0)])
    assert list(d.iterdir()) == []


def test_spool_dirs_are_recorded_once_and_swept_at_the_next_start(tmp_path: Path) -> None:
    d = tmp_path / "dest"
    d.mkdir()
    dirs = SpoolDirs(tmp_path / "agent" / "n1.spool-dirs")
    dirs.add(d)
    dirs.add(d)
    assert dirs.path.read_text() == f"{d}\n"
    assert dirs.path.stat().st_mode & 0o777 == 0o600
    fd = claim(d / f".f.{'a' * 12}{PART_SUFFIX}", "a" * 32, "n1")
    assert fd is not None
    os.write(fd, b"z" * 10)
    os.close(fd)  # the writer is gone (as after a crash)
    again = SpoolDirs(dirs.path)  # the next start of the agent
    assert [(p.name, n) for p, n in again.sweep()] == [(f".f.{'a' * 12}{PART_SUFFIX}", 10)]
    assert dirs.path.read_text() == ""
