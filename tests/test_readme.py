"""The README's fan-out tour, typed in order on a fresh local cluster: every
command runs, and every summary line (and `ls` line) the README prints is
what the command prints. Local paths the tour writes outside the cluster go
to this test's directory instead."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
SUMMARY = re.compile(r"^(PASS|FAILED|TIMEOUT|UNREACHABLE|REFUSED|OOM): \S+, SUM: \d+$")


def tour() -> list[tuple[str, list[str]]]:
    """(command, the lines the README shows after it), in order."""
    text = README.read_text()
    part = text[text.index("## A tour") : text.index("### The same from Python")]
    steps: list[tuple[str, list[str]]] = []
    for line in part.splitlines():
        if line.startswith("    $ "):
            steps.append((line[6:], []))
        elif line.startswith("    ") and steps:
            steps[-1][1].append(line[4:])
        elif line.strip() and steps and not line.startswith("    "):
            steps.append(("", []))  # prose ends a block
    return [s for s in steps if s[0]]


def test_the_tour_finds_its_steps() -> None:
    steps = tour()
    assert steps[0][0] == "shoal cluster up -n 8" and len(steps) > 12
    assert any(SUMMARY.match(x) for _, out in steps for x in out)


def test_the_tour_works_typed_in_order(shoal_home: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    work = tmp_path / "work"
    work.mkdir()
    storage = shoal_home / "storage"  # under SHOAL_HOME: visible inside the nodes' /tmp
    checked = 0
    try:
        for cmd, shown in tour():
            cmd = cmd.replace("/var/tmp/storage", str(storage))
            cmd = cmd.replace("/tmp/big.tar", str(tmp_path / "big.tar"))
            cp = subprocess.run(["bash", "-c", cmd], cwd=work, env=env, capture_output=True,
                                text=True, timeout=120, stdin=subprocess.DEVNULL)  # fmt: skip
            got = cp.stdout.splitlines()
            for want in shown:
                if SUMMARY.match(want) or cmd.startswith("ls "):
                    assert want in got, (cmd, want, cp.stdout, cp.stderr)
                    checked += 1
            if cmd.startswith("ls "):
                assert len(got) == len(shown), (cmd, got, shown)
    finally:
        subprocess.run(["shoal", "cluster", "down"], env=env, capture_output=True, timeout=120)
    assert checked >= 12  # the summaries of run, -b, -t, OOM, scratch, ping, copy, gather...
