"""--scratch DIR with real agents: a fresh private directory per command that
is gone when the command ends (however it ends), refused before the command
starts when DIR cannot hold one, and swept after an agent crash."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from agentproc import Agents, marked, shoal, wait_for

from shoal.agent.cgroups import Host
from shoal.agent.sandbox import _start_time

needs_cgroups = pytest.mark.skipif(
    os.geteuid() != 0 or Host.detect().version == 0, reason="sandboxes need root and cgroups"
)
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="a read-only bind mount needs root")

# what a command prints about its scratch: the path, then the two variables
SHOW = 'echo "$TMPDIR"; echo "$SHOAL_SCRATCH"; stat -c %a "$TMPDIR"'


@pytest.fixture
def where(tmp_path: Path) -> Path:
    d = tmp_path / "scratch"
    d.mkdir()
    return d


def _run(agents: Agents, *args: str) -> dict:  # type: ignore[type-arg]
    cp = shoal("run", "--inventory", str(agents.inventory()), "--json", *args)
    return json.loads(cp.stdout)["nodes"]  # type: ignore[no-any-return]


def test_scratch_is_private_in_tmpdir_and_gone_after_a_normal_end(
    agents: Agents, where: Path
) -> None:
    agents.start("n1")
    fill = "mkdir -p $TMPDIR/a/b; head -c 9999 /dev/zero > $TMPDIR/a/b/f"
    nodes = _run(agents, "-w", "n1", "--scratch", str(where), "--", f"{SHOW}; {fill}")
    n1 = nodes["n1"]
    assert n1["state"] == "PASS", n1
    tmpdir, scratch, mode = n1["stdout"].split()
    assert tmpdir == scratch
    assert Path(tmpdir).parent == where and Path(tmpdir).name.startswith("shoal-scratch-")
    assert mode == "700"
    assert list(where.iterdir()) == []  # removed before the result was sent


def test_scratch_is_gone_after_a_time_limit(agents: Agents, where: Path) -> None:
    agents.start("n1")
    nodes = _run(agents, "-w", "n1", "-t", "2", "--scratch", str(where), "--",
                 f"{SHOW}; touch $TMPDIR/kept; sleep 60")  # fmt: skip
    assert nodes["n1"]["state"] == "TIMEOUT"
    assert Path(nodes["n1"]["stdout"].split()[0]).parent == where
    assert list(where.iterdir()) == []


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    d = tmp_path / "ro"
    d.mkdir()
    subprocess.run(["mount", "--bind", str(d), str(d)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(d)], check=True)
        yield d
    finally:
        subprocess.run(["umount", str(d)], check=True)


@needs_root
def test_scratch_refused_before_the_command_starts(
    agents: Agents, tmp_path: Path, read_only_dir: Path
) -> None:
    agents.start("n1")
    ran = tmp_path / "ran"
    a_file = tmp_path / "file"
    a_file.write_text("")
    for where, why in (
        (tmp_path / "missing", "does not exist"),
        (a_file, "is not a directory"),
        (read_only_dir, "is read-only"),
    ):
        n1 = _run(agents, "-w", "n1", "--scratch", str(where), "--", f"touch {ran}")["n1"]
        assert n1["state"] == "REFUSED", n1
        assert n1["reason"] == f"refused: --scratch {where} {why} on this node"
        assert not ran.exists()  # the command never started
    assert list(read_only_dir.iterdir()) == []
    cp = shoal("run", "--inventory", str(agents.inventory()), "-w", "n1", "--scratch", "rel",
               "--", "true")  # fmt: skip
    assert cp.returncode == 2 and "must be an absolute path" in cp.stderr
    assert "Traceback" not in cp.stderr


@needs_cgroups
def test_an_agent_killed_with_3_sandboxes_leaves_no_cgroup_process_or_scratch(
    agents: Agents, tmp_path: Path
) -> None:
    a = agents.start("n1")
    instance = f"{a.proc.pid}.{_start_time(a.proc.pid)}"
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    tag = uuid.uuid4().hex  # the marker split: only the escaped child's line holds it
    marker, child = f"shoal-test-{tag}", f'T={tag}; setsid sh -c "sleep 600; echo shoal-test-$T"'
    argv = [sys.executable, "-m", "shoal.cli.main", "run", "--inventory", str(agents.inventory()),
            "-w", "n1", "--scratch", str(scratch), "--mem", "1G", "--",
            f"head -c 1048576 /dev/zero > $TMPDIR/data; {child} & sleep 600"]  # fmt: skip
    out = subprocess.DEVNULL
    clients = [subprocess.Popen(argv, stdout=out, stderr=out) for _ in range(3)]
    bases = set(Host.detect().bases.values())

    def cgroups_of_the_dead() -> list[Path]:
        return [d for b in bases for d in b.glob(f"{instance}-*")]

    try:
        wait_for(lambda: len(marked(marker)) == 3, "three sandboxes running")
        wait_for(lambda: len(list(scratch.glob("*/data"))) == 3, "three scratch dirs written")
        assert len(cgroups_of_the_dead()) >= 3
        a.kill()  # SIGKILL: nothing is cleaned up by the agent itself
        assert len(marked(marker)) == 3 and len(list(scratch.iterdir())) == 3
        b = agents.start("n1")
        assert marked(marker) == []  # the sweep ran before the agent said ready
        assert cgroups_of_the_dead() == []
        assert list(scratch.iterdir()) == []
        log = b.log_text()
        assert "removed 3 sandbox(es) of a previous agent" in log
        assert "removed 3 scratch dir(s) of a previous agent: 3 file(s), 3.0 MiB freed" in log
    finally:
        for c in clients:
            c.kill()


def test_the_sweep_removes_only_what_shoal_made(tmp_path: Path) -> None:
    """A record of a dead agent whose target is not shoal's scratch is dropped,
    the target left; a live agent's scratch is left."""
    from shoal.agent.sandbox import Scratches

    state = tmp_path / "ledger"
    dead = "1.1"  # no process 1 started at tick 1
    mine = Scratches(state, f"{os.getpid()}.{_start_time(os.getpid())}")
    live = mine.make(str(tmp_path))
    other = tmp_path / "precious"
    other.mkdir()
    (other / "f").write_text("keep")
    os.symlink(other, state / f"shoal-scratch-{dead}-1")  # a name that does not match
    gone = tmp_path / f"shoal-scratch-{dead}-2"
    gone.mkdir()
    (gone / "f").write_text("x")
    os.symlink(gone, state / gone.name)
    (state / "unrelated").write_text("")
    assert Scratches(state, "2.2").sweep()[0] == 1
    assert (other / "f").read_text() == "keep" and live.is_dir() and not gone.exists()
    assert sorted(p.name for p in state.iterdir()) == sorted([live.name, "unrelated"])


def test_scratch_is_gone_after_ctrl_c_and_after_the_agent_stops(
    agents: Agents, where: Path
) -> None:
    import signal

    a = agents.start("n1")
    argv = [sys.executable, "-m", "shoal.cli.main", "run", "--inventory", str(agents.inventory()),
            "-w", "n1", "--scratch", str(where), "--", "touch $TMPDIR/f; sleep 600"]  # fmt: skip
    for stop in ("ctrl-c", "agent stop"):
        client = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: len(list(where.glob("*/f"))) == 1, "the command writing its scratch")
            if stop == "ctrl-c":
                client.send_signal(signal.SIGINT)
                assert client.wait(timeout=30) == 130
                wait_for(lambda: list(where.iterdir()) == [], "the scratch gone after Ctrl-C")
            else:
                a.kill(signal.SIGTERM)  # returns once the agent has exited
                assert list(where.iterdir()) == []
        finally:
            client.kill()
