"""Sandboxes on the real kernel (cgroup v1 here, as root): everything a command
starts dies with it, usage is measured, limits hold, an agent crash leaves
nothing after the restart. The v2 file handling is checked against a
directory laid out as the kernel lays out a v2 cgroup."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from agentproc import Agents, marked, shoal, wait_for

from shoal.agent.cgroups import Host
from shoal.agent.sandbox import Request, SandboxError

needs_cgroups = pytest.mark.skipif(
    os.geteuid() != 0 or Host.detect().version == 0, reason="sandboxes need root and cgroups"
)


def _escaping(tag: str) -> tuple[str, str]:
    """(marker, a shell snippet starting a setsid'd child whose command line,
    and only that one, holds the marker: the snippet has it split)."""
    return f"shoal-test-{tag}", f'T={tag}; setsid sh -c "sleep 600; echo shoal-test-$T"'


def _json(agents: Agents, *args: str) -> dict:  # type: ignore[type-arg]
    inv = agents.inventory()
    cp = shoal("run", "--inventory", str(inv), "--json", *args)
    return json.loads(cp.stdout)["nodes"]  # type: ignore[no-any-return]


@needs_cgroups
def test_a_time_limit_kills_what_escaped_the_process_group(agents: Agents) -> None:
    agents.start("n1")
    marker = f"shoal-test-{uuid.uuid4().hex}"
    nodes = _json(agents, "-w", "n1", "-t", "2", "--",
                  f"setsid sh -c 'sleep 303; echo {marker}' & sleep 10")  # fmt: skip
    assert nodes["n1"]["state"] == "TIMEOUT"
    assert marked(marker) == []  # gone when the result came, not later


def test_a_command_ends_with_its_main_process_and_takes_its_background_jobs(
    agents: Agents,
) -> None:
    """`sleep 306 & echo started` returns once the shell exits (its background
    job held stdout); the job goes with it, escaped or not."""
    agents.start("n1")
    marker, child = _escaping(uuid.uuid4().hex)
    nodes = _json(agents, "-w", "n1", "--", f"sleep 306 & {child} & echo started")
    assert nodes["n1"]["state"] == "PASS" and nodes["n1"]["stdout"] == "started\n"
    assert marked(marker) == [] and marked("sleep 306") == []


def test_a_timed_out_command_has_one_documented_status(agents: Agents) -> None:
    for i in (1, 2, 3):
        agents.start(f"n{i}")
    nodes = _json(agents, "-w", "n[1-3]", "-t", "1", "--", "trap '' TERM; sleep 30 & wait; exit 3")
    assert {n: (d["state"], d["exit_code"]) for n, d in nodes.items()} == {
        n: ("TIMEOUT", 124) for n in ("n1", "n2", "n3")
    }


@needs_cgroups
def test_ctrl_c_kills_double_forked_children(agents: Agents) -> None:
    agents.start("n1")
    marker, child = _escaping(uuid.uuid4().hex)
    client = subprocess.Popen(
        [sys.executable, "-m", "shoal.cli.main", "run", "--inventory", str(agents.inventory()),
         "-w", "n1", "--", f"({child} &) ; sleep 600"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for(lambda: len(marked(marker)) == 1, "the escaped child running")
        client.send_signal(signal.SIGINT)
        assert client.wait(timeout=30) == 130
        wait_for(lambda: marked(marker) == [], "the escaped child gone")
    finally:
        if client.poll() is None:
            client.kill()


@needs_cgroups
def test_every_result_carries_cpu_time_and_peak_memory(agents: Agents) -> None:
    agents.start("n1")
    prog = (
        "x = bytearray(100 << 20)\nimport time\nt = time.time()\nwhile time.time() - t < 0.5: pass"
    )
    nodes = _json(agents, "-w", "n1", "--", f"python3 -c '{prog}' & wait")
    n1 = nodes["n1"]
    assert n1["state"] == "PASS"
    assert n1["cpu_s"] >= 0.3  # a child's CPU counts (the busy loop ran in python3)
    assert n1["peak_memory"] >= 100 << 20


@needs_cgroups
def test_memory_limit_is_oom_with_its_peak_and_the_others_go_on(agents: Agents) -> None:
    agents.start("n1")
    agents.start("n2")
    hog = "python3 -c 'x = bytearray(200 << 20)'"
    nodes = _json(agents, "-w", "n1", "--mem", "50M", "--", hog)
    assert nodes["n1"]["state"] == "OOM"
    assert "limit 50.0 MiB" in nodes["n1"]["reason"]
    assert nodes["n1"]["peak_memory"] >= 40 << 20
    nodes = _json(agents, "-w", "n[1-2]", "--", hog)
    assert [d["state"] for d in nodes.values()] == ["PASS", "PASS"]


@needs_cgroups
def test_bad_requests_are_refused_on_the_node_with_its_range(agents: Agents) -> None:
    agents.start("n1")
    have = Path("/sys/fs/cgroup/cpuset/cpuset.effective_cpus").read_text().strip()
    nodes = _json(agents, "-w", "n1", "--cpus", "0-4095", "--", "true")
    assert nodes["n1"]["state"] == "REFUSED"
    assert f"CPUs 0-4095 not on this node: it has {have}" in nodes["n1"]["reason"]
    mems = Path("/sys/fs/cgroup/cpuset/cpuset.effective_mems").read_text().strip()
    nodes = _json(agents, "-w", "n1", "--mems", "0-63", "--", "true")
    assert nodes["n1"]["state"] == "REFUSED"
    assert f"memory nodes 0-63 not on this node: it has {mems}" in nodes["n1"]["reason"]
    nodes = _json(agents, "-w", "n1", "--cpus", "three", "--", "true")
    assert nodes["n1"]["state"] == "REFUSED" and "not a list" in nodes["n1"]["reason"]
    cp = shoal("run", "--inventory", str(agents.inventory()), "-w", "n1", "--mem", "lots", "--",
               "true")  # fmt: skip
    assert cp.returncode == 2 and "--mem 'lots'" in cp.stderr


@needs_cgroups
def test_a_process_limit_contains_a_fork_storm(agents: Agents) -> None:
    agents.start("n1")
    marker = f"shoal-test-{uuid.uuid4().hex}"
    nodes = _json(agents, "-w", "n1", "--pids", "100", "-t", "20", "--",
                  f"for i in $(seq 10000); do (sleep 30; echo {marker}) & done 2>/dev/null; "
                  "wait")  # fmt: skip
    assert nodes["n1"]["state"] in ("FAILED", "TIMEOUT", "PASS")
    assert marked(marker) == []
    assert len(marked("sleep 30")) < 100


@needs_cgroups
def test_sandboxes_of_a_crashed_agent_are_swept_at_restart(agents: Agents) -> None:
    a = agents.start("n1")
    inv = agents.inventory()
    marker, child = _escaping(uuid.uuid4().hex)
    argv = [sys.executable, "-m", "shoal.cli.main", "run", "--inventory", str(inv), "-w", "n1",
            "--", f"{child} & sleep 600"]  # fmt: skip
    out = subprocess.DEVNULL
    clients = [subprocess.Popen(argv, stdout=out, stderr=out) for _ in range(3)]
    try:
        wait_for(lambda: len(marked(marker)) == 3, "three sandboxes running")
        a.kill()  # SIGKILL: nothing is cleaned up by the agent itself
        assert len(marked(marker)) == 3
        b = agents.start("n1")
        wait_for(lambda: marked(marker) == [], "the orphans gone after the restart")
        assert "removed 3 sandbox(es) of a previous agent" in b.log_text()
    finally:
        for c in clients:
            c.kill()


def test_v2_files_as_the_kernel_lays_them_out(tmp_path: Path) -> None:
    base = tmp_path / "shoal"
    base.mkdir()
    (base / "cpuset.cpus.effective").write_text("0-7\n")
    (base / "cpuset.mems.effective").write_text("0\n")
    host = Host(2, {c: base for c in ("", "cpuset", "cpu", "memory", "pids")})
    box = host.sandbox(Request(cpus="2-3", memory=64 << 20, cpu_quota=1.5, pids=50))
    assert box is not None
    d = box.dirs[0]
    assert (d / "cpuset.cpus").read_text() == "2-3"
    assert (d / "memory.max").read_text() == str(64 << 20)
    assert (d / "memory.swap.max").read_text() == "0"
    assert (d / "cpu.max").read_text() == "150000 100000"
    assert (d / "pids.max").read_text() == "50"
    assert box.argv("true")[-1] == str(d / "cgroup.procs")
    (d / "cpu.stat").write_text("usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n")
    (d / "memory.peak").write_text("73400320\n")
    (d / "memory.events").write_text("low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n")
    u = box.usage()
    assert (u.cpu_ns, u.peak_memory, u.oom) == (2_500_000_000, 73400320, True)
    with pytest.raises(SandboxError, match="CPUs 9 not on this node: it has 0-7"):
        host.sandbox(Request(cpus="9"))
    with pytest.raises(SandboxError, match="cannot enforce"):
        Host.none("not root").sandbox(Request(memory=1))
    assert Host.none("not root").sandbox(Request()) is None


@needs_cgroups
def test_acct_puts_the_accounting_in_the_l_and_b_headers(agents: Agents) -> None:
    import re

    agents.start("n1")
    agents.start("n2")
    inv = str(agents.inventory())
    prog = (
        "x = bytearray(100 << 20)\nimport time\nt = time.time()\nwhile time.time() - t < 0.5: pass"
    )
    busy = f"python3 -c '{prog}'"
    cp = shoal("run", "--inventory", inv, "-w", "n1", "-l", "--acct", "--", busy)
    m = re.search(r"^>>> n1 \[PASS\] wall (\S+)s cpu (\S+)s peak (\S+)MiB$", cp.stdout, re.M)
    assert m is not None, cp.stdout
    wall, cpu, peak = (float(x) for x in m.groups())
    assert wall >= 0.5 and cpu >= 0.3 and peak >= 100
    cp = shoal("run", "--inventory", inv, "-w", "n[1-2]", "-b", "--acct", "--", "true")
    header = r"^n\[1-2\] \(2\) \[PASS\] wall [\d.-]+s cpu [\d.-]+s peak [\d.-]+MiB$"
    assert re.search(header, cp.stdout, re.M), cp.stdout
    cp = shoal("run", "--inventory", inv, "-w", "n1", "-l", "--", "true")
    assert ">>> n1 [PASS]\n" in cp.stdout  # opt-in: the header is as before without it
    cp = shoal(
        "run", "--inventory", inv, "-w", "n1", "-l", "--acct", "--cpus", "4095", "--", "true"
    )
    assert ">>> n1 [REFUSED]\n" in cp.stdout  # it never ran: nothing to account
    cp = shoal("run", "--inventory", inv, "-w", "n1", "--acct", "--", "true")
    assert cp.returncode == 2 and "--acct goes with -l or -b" in cp.stderr


def test_an_agent_without_sandboxes_says_so_and_refuses_limits(agents: Agents) -> None:
    agents.start("n1", env={"SHOAL_SANDBOX": "off"})
    assert "NO SANDBOX (--no-sandbox)" in agents.started[0].log_text()
    nodes = _json(agents, "-w", "n1", "--", "true")
    assert nodes["n1"]["state"] == "PASS" and nodes["n1"]["peak_memory"] == 0
    nodes = _json(agents, "-w", "n1", "--mem", "1G", "--", "true")
    assert nodes["n1"]["state"] == "REFUSED"
    assert "cannot enforce limits: turned off by --no-sandbox" in nodes["n1"]["reason"]
