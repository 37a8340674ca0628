"""`shoal run` end to end against real agents: the summary, -l, -b, --json,
exit statuses, env and cwd, bad node sets, missing certificates, time-outs,
the output cap, and Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from agentproc import Agents, marked, shoal, wait_for

from shoal.core.wire import pb
from shoal.fanout.report import Report


def _result(node: str, state: int, code: int = 0) -> pb.TaskEvent:
    return pb.TaskEvent(node=node, result=pb.Result(state=state, exit_code=code))  # type: ignore[arg-type]


def test_summary_format_exactly() -> None:
    names = [f"cn{i}" for i in range(0, 45)]
    r = Report(names, 0)
    for n in names:
        i = int(n[2:])
        state = {
            8: pb.STATE_FAILED,
            20: pb.STATE_FAILED,
            30: pb.STATE_TIMEOUT,
            40: pb.STATE_UNREACHABLE,
            41: pb.STATE_REFUSED,
        }.get(i, pb.STATE_OK)
        r.add(_result(n, state))
    assert r.summary_lines() == [
        "PASS: cn[0-7,9-19,21-29,31-39,42-44], SUM: 40",
        "FAILED: cn[8,20], SUM: 2",
        "TIMEOUT: cn30, SUM: 1",
        "UNREACHABLE: cn40, SUM: 1",
        "REFUSED: cn41, SUM: 1",
    ]
    assert r.exit_code() == 4


def test_exit_status_is_the_worst_state() -> None:
    r = Report(["a", "b", "c"], 0)
    r.add(_result("a", pb.STATE_OK))
    assert r.exit_code() == 0
    r.add(_result("b", pb.STATE_FAILED, 1))
    assert r.exit_code() == 1
    r.add(_result("c", pb.STATE_TIMEOUT))
    assert r.exit_code() == 3


def _three(agents: Agents) -> Path:
    for n in ("n1", "n2", "n3"):
        agents.start(n)
    return agents.inventory(groups={"web": "n[1-2]"})


def test_stream_gathered_blocks_and_exit(agents: Agents) -> None:
    inv = str(_three(agents))
    # n3 plays another role (commands see SHOAL_NODE, never the agent's environment)
    cmd = 'ROLE=a; [ "$SHOAL_NODE" = n3 ] && ROLE=b; echo role=$ROLE; [ "$ROLE" = a ]'
    cp = shoal("run", "--inventory", inv, "-w", "n[1-3]", "--", cmd)
    assert cp.returncode == 1
    assert sorted(cp.stdout.splitlines()[:3]) == ["n1: role=a", "n2: role=a", "n3: role=b"]
    assert cp.stdout.splitlines()[3:] == ["PASS: n[1-2], SUM: 2", "FAILED: n3, SUM: 1"]

    cp = shoal("run", "--inventory", inv, "-w", "n[1-3]", "-l", "--", cmd)
    assert cp.stdout.splitlines() == [
        ">>> n1 [PASS]",
        "role=a",
        ">>> n2 [PASS]",
        "role=a",
        ">>> n3 [FAILED]",
        "role=b",
        "(exit status 1)",
        "PASS: n[1-2], SUM: 2",
        "FAILED: n3, SUM: 1",
    ]
    cp = shoal("run", "--inventory", inv, "-w", "n[1-3]", "-b", "--", cmd)
    assert cp.stdout.splitlines() == [
        "---------------",
        "n[1-2] (2) [PASS]",
        "---------------",
        "role=a",
        "---------------",
        "n3 (1) [FAILED exit 1]",
        "---------------",
        "role=b",
        "PASS: n[1-2], SUM: 2",
        "FAILED: n3, SUM: 1",
    ]
    cp = shoal("run", "--inventory", inv, "-w", "@web", "-w", "n3", "-x", "n2", "--json", "--", cmd)
    doc = json.loads(cp.stdout)
    assert cp.returncode == 1
    assert list(doc["nodes"]) == ["n1", "n3"]
    n3 = doc["nodes"]["n3"]
    if os.geteuid() == 0:  # measured in its sandbox (cgroups need root)
        assert n3["peak_memory"] > 0
    assert n3 | {"start": 0, "end": 0, "rtt_ms": 0, "cpu_s": 0, "peak_memory": 0} == {
        "state": "FAILED",
        "exit_code": 1,
        "reason": "exit status 1",
        "stdout": "role=b\n",
        "stderr": "",
        "stdout_dropped": 0,
        "stderr_dropped": 0,
        "start": 0,
        "end": 0,
        "rtt_ms": 0,
        "cpu_s": 0,
        "peak_memory": 0,
    }
    assert doc["nodes"]["n1"]["end"] >= doc["nodes"]["n1"]["start"] > 0
    assert doc["summary"] == {
        "PASS": {"nodes": "n1", "count": 1},
        "FAILED": {"nodes": "n3", "count": 1},
    }


def test_l_and_b_keep_stderr_apart_unless_merged(agents: Agents) -> None:
    """As clush: the blocks hold stdout; stderr lines go to stderr, prefixed."""
    for i in (1, 2):
        agents.start(f"n{i}")
    inv = str(agents.inventory())
    cmd = "echo out; echo err >&2"
    for mode in ("-l", "-b"):
        cp = shoal("run", "--inventory", inv, "-w", "n[1-2]", mode, "--", cmd)
        assert cp.returncode == 0, cp.stderr
        assert "err" not in cp.stdout and cp.stdout.count("out\n") == (2 if mode == "-l" else 1)
        assert sorted(cp.stderr.splitlines()) == ["n1: err", "n2: err"]
        cp = shoal("run", "--inventory", inv, "-w", "n[1-2]", mode, "--merge", "--", cmd)
        assert "out\nerr\n" in cp.stdout and cp.stderr == ""
    cp = shoal("run", "--inventory", inv, "-w", "n1", "--merge", "--", cmd)
    assert cp.returncode == 2 and "--merge goes with -l or -b" in cp.stderr


def test_env_cwd_and_stderr(agents: Agents, tmp_path: Path) -> None:
    agents.start("n1")
    inv = str(agents.inventory())
    cp = shoal(
        "run",
        "--inventory",
        inv,
        "-w",
        "n1",
        "--env",
        "FOO=bar baz",
        "--cwd",
        str(tmp_path),
        "--",
        'echo "$FOO"; pwd; echo warn >&2',
    )
    assert cp.returncode == 0
    assert cp.stdout.splitlines() == ["n1: bar baz", f"n1: {tmp_path}", "PASS: n1, SUM: 1"]
    assert cp.stderr.splitlines() == ["n1: warn"]


def test_malformed_node_set_and_unknown_group_contact_nothing(agents: Agents) -> None:
    a = agents.start("n1")
    inv = str(agents.inventory(groups={"web": "n1"}))
    for bad in ("n[1-", "@nosuchgroup"):
        cp = shoal("run", "--inventory", inv, "-w", bad, "--", "echo no")
        assert cp.returncode == 2
        assert len(cp.stderr.strip().splitlines()) == 1 and cp.stderr.startswith("shoal: error:")
        assert cp.stdout == ""
    assert "exec from" not in a.log_text()


def test_missing_client_certificate_is_a_one_line_config_error(agents: Agents) -> None:
    agents.start("n1")
    inv = str(agents.inventory())
    (agents.home / "tls" / "client.key").unlink()
    cp = shoal("run", "--inventory", inv, "-w", "n1", "--", "echo no")
    assert cp.returncode == 5
    assert len(cp.stderr.strip().splitlines()) == 1
    assert "shoal ca init" in cp.stderr and "--insecure" in cp.stderr


def test_timeout_leaves_no_process(agents: Agents) -> None:
    agents.start("n1")
    agents.start("n2")
    inv = str(agents.inventory())
    marker = f"shoal-test-{uuid.uuid4().hex}"
    cp = shoal(
        "run",
        "--inventory",
        inv,
        "-w",
        "n[1-2]",
        "-t",
        "1",
        "-l",
        "--",
        f"sh -c 'sleep 600; echo {marker}' & sleep 600; echo {marker}",
    )
    assert cp.returncode == 3
    assert cp.stdout.splitlines()[-1] == "TIMEOUT: n[1-2], SUM: 2"
    assert ">>> n1 [TIMEOUT]" in cp.stdout
    assert marked(marker) == []


def test_output_cap_notes_what_was_dropped(agents: Agents) -> None:
    agents.start("n1")
    inv = str(agents.inventory())
    cp = shoal(
        "run",
        "--inventory",
        inv,
        "-w",
        "n1",
        "-l",
        "--",
        "head -c 3000 /dev/zero",
        env={"SHOAL_OUTPUT_CAP": "1000", "SHOAL_HOME": str(agents.home), "PATH": "/usr/bin:/bin"},
    )
    assert cp.returncode == 0
    lines = cp.stdout.splitlines()
    assert lines[0] == ">>> n1 [PASS]"
    assert lines[1] == "\0" * 1000
    assert lines[2] == "[… 2000 bytes of stdout dropped]"


def test_ctrl_c_cancels_on_the_nodes(agents: Agents) -> None:
    # A long keepalive makes the agents' wait for an adopter (70 s) outlast the
    # check below: the commands go because Ctrl-C is passed down, not by time.
    for n in ("n1", "n2", "n3"):
        agents.start(n, env={"SHOAL_KEEPALIVE_INTERVAL": "30"})
    inv = str(agents.inventory())
    marker = f"shoal-test-{uuid.uuid4().hex}"
    client = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "shoal.cli.main",
            "run",
            "--inventory",
            inv,
            "-W",
            "1",
            "-w",
            "n[1-3]",
            "--",
            f"sleep 600; echo {marker}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: len(marked(marker)) == 3, "the command running on three nodes")
        client.send_signal(signal.SIGINT)
        _, err = client.communicate(timeout=60)
    finally:
        if client.poll() is None:
            client.kill()
    assert client.returncode == 130
    assert "interrupted" in err
    wait_for(lambda: marked(marker) == [], "the remote commands gone")
    assert marked(marker) == []
