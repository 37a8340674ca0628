"""The flags clush and pdsh users reach for, against real agents."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from agentproc import Agents


@pytest.fixture
def inv(agents: Agents, tmp_path: Path) -> str:
    for i in range(1, 5):
        root = tmp_path / f"root-n{i}"
        (root / "dest").mkdir(parents=True)
        agents.start(f"n{i}", files_root=root)
    return str(agents.inventory())


def shoal(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "shoal.cli.main", *args]
    if stdin is None:
        return subprocess.run(argv, capture_output=True, text=True, timeout=120)
    cp = subprocess.run(argv, capture_output=True, input=stdin, timeout=120)
    return subprocess.CompletedProcess(argv, cp.returncode, cp.stdout.decode(), cp.stderr.decode())


def test_clush_spellings_of_timeout_order_and_fanout(inv: str) -> None:
    cp = shoal("run", "--inventory", inv, "-w", "n[1-2]", "-u", "1", "-L", "-f", "1", "--",
               "echo %h; sleep 5")  # fmt: skip
    assert cp.returncode == 3
    assert cp.stdout.splitlines()[:2] == [">>> n1 [TIMEOUT]", "n1"]
    assert cp.stdout.splitlines()[-1] == "TIMEOUT: n[1-2], SUM: 2"


def test_S_exits_with_the_largest_status_and_N_q_v(inv: str) -> None:
    cmd = 'case %h in n2) exit 3;; n3) exit 7;; esac; echo "from %h"'
    cp = shoal("run", "--inventory", inv, "-w", "n[1-4]", "-S", "-N", "-q", "-v", "--", cmd)
    assert cp.returncode == 7
    assert sorted(cp.stdout.splitlines()) == ["from n1", "from n4"]  # -N, and -q: no summary
    said = sorted(cp.stderr.splitlines())  # -v: every node's result, PASS included
    assert [x.split(" (")[0] for x in said] == [
        "n1: PASS",
        "n2: FAILED: exit status 3",
        "n3: FAILED: exit status 7",
        "n4: PASS",
    ]
    assert shoal("run", "--inventory", inv, "-w", "n1", "-S", "--", "true").returncode == 0


def test_diff_against_the_commonest_output(inv: str) -> None:
    cmd = "echo same; [ %h = n3 ] && echo different || echo same"
    cp = shoal("run", "--inventory", inv, "-w", "n[1-4]", "--diff", "--", cmd)
    assert cp.returncode == 0, cp.stderr
    out = cp.stdout.splitlines()
    assert out[:2] == ["--- n[1-2,4]", "+++ n3"]
    assert "-same" in out and "+different" in out


def test_pick_and_hostfile(inv: str, tmp_path: Path) -> None:
    cp = shoal("run", "--inventory", inv, "-w", "n[1-4]", "--pick", "2", "--json", "--", "true")
    assert cp.returncode == 0 and cp.stdout.count('"state": "PASS"') == 2
    hosts = tmp_path / "hosts"
    hosts.write_text("# the rack\nn1\nn[3-4]  # two more\n\n")
    cp = shoal("ping", "--inventory", inv, "--hostfile", str(hosts))
    assert cp.stdout.splitlines()[-1] == "PASS: n[1,3-4], SUM: 3"
    cp = shoal("ping", "--inventory", inv)
    assert cp.returncode == 2 and "give -w NODESET or --hostfile" in cp.stderr


def test_stdin_goes_to_every_node_unless_nostdin(inv: str) -> None:
    cp = shoal("run", "--inventory", inv, "-w", "n[1-2]", "-b", "--", "cat", stdin=b"hello\n")
    assert cp.returncode == 0 and "hello" in cp.stdout and "n[1-2] (2)" in cp.stdout
    cp = shoal("run", "--inventory", inv, "-w", "n1", "--nostdin", "-l", "--", "cat",
               stdin=b"hello\n")  # fmt: skip
    assert cp.returncode == 0 and "hello" not in cp.stdout


def test_h_in_destinations_and_per_node_output_files(inv: str, tmp_path: Path) -> None:
    src = tmp_path / "conf"
    src.write_text("x=1\n")
    cp = shoal("copy", "--inventory", inv, "-w", "n[1-2]", str(src), "/dest/conf.%h")
    assert cp.returncode == 0, cp.stderr
    for n in ("n1", "n2"):
        assert (tmp_path / f"root-{n}" / "dest" / f"conf.{n}").read_text() == "x=1\n"
    cp = shoal("gather", "--inventory", inv, "-w", "n[1-2]", "/dest/conf.n1",
               str(tmp_path / "got" / "%h"))  # fmt: skip
    assert cp.returncode == 1 and (tmp_path / "got" / "n1" / "conf.n1").read_text() == "x=1\n"
    out, err = tmp_path / "out", tmp_path / "err"
    cp = shoal("run", "--inventory", inv, "-w", "n[1-2]", "--outdir", str(out), "--errdir",
               str(err), "--", "echo o-%h; echo e-%h >&2")  # fmt: skip
    assert cp.returncode == 0
    for n in ("n1", "n2"):
        assert (out / n).read_text() == f"o-{n}\n" and (err / n).read_text() == f"e-{n}\n"


def test_a_long_wait_shows_progress_on_a_terminal_only(inv: str) -> None:
    """stderr a terminal: a transient line says how many nodes answered."""
    import os
    import pty

    master, slave = pty.openpty()
    try:
        p = subprocess.Popen(
            [sys.executable, "-m", "shoal.cli.main", "run", "--inventory", inv, "-w", "n[1-2]",
             "-b", "--", "[ %h = n1 ] || sleep 4; echo done"],
            stdout=subprocess.PIPE, stderr=slave, env={**os.environ, "TERM": "xterm"},
        )  # fmt: skip
        os.close(slave)
        out, _ = p.communicate(timeout=60)
        seen = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(master)
    assert p.returncode == 0
    assert b"waiting for nodes" in seen and b"1/2" in seen
    assert b"waiting" not in out  # stdout holds the output only
    cp = shoal("run", "--inventory", inv, "-w", "n[1-2]", "-b", "--", "sleep 3")
    assert "waiting" not in cp.stderr  # not a terminal: no progress line
