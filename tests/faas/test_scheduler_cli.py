"""`shoal faas scheduler` and `shoal faas invoke` as a user types them: a
scheduler over real agents, calls by name with their output and timings, a
clear one-line error for a mistake, and SIGTERM removing every container."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from agentproc import Agents, shoal, wait_for

from shoal.agent.cgroups import Host

FNS = Path(__file__).resolve().parent / "fns"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or Host.detect().version == 0, reason="containers need root and cgroups"
)


def test_scheduler_invoke_and_stop(agents: Agents, tmp_path: Path) -> None:
    agents.start("n1")
    agents.start("n2")
    agents.inventory()
    f = tmp_path / "functions.toml"
    f.write_text(
        f'[functions.count]\nhandler = "fnmod:count"\nmemory_mb = 128\ncode = "{FNS}"\n'
        '[functions.upper]\nhandler = "tr a-z A-Z"\nmemory_mb = 64\n'
    )
    p = subprocess.Popen(
        [sys.executable, "-m", "shoal.cli.main", "faas", "scheduler", "-w", "n[1-2]",
         "--functions", str(f), "--code-root", str(tmp_path / "nodes")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert p.stdout is not None
        line = p.stdout.readline()
        assert "scheduler listening on port" in line and "2 node(s), policy shoal" in line, line
        one = shoal("faas", "invoke", "count", "--event", '{"x": 1}')
        assert one.returncode == 0, one.stderr
        assert json.loads(one.stdout)["calls"] == 1
        assert "count: cold on n" in one.stderr and "call 1" in one.stderr
        up = shoal("faas", "invoke", "upper", "--event", "quiet")
        assert up.returncode == 0 and up.stdout == "QUIET\n", up
        bad = shoal("faas", "invoke", "nope")
        assert bad.returncode == 2 and bad.stderr.count("\n") == 1
        assert "unknown function 'nope'" in bad.stderr
        failing = shoal("faas", "invoke", "count", "--event", '{"fail": true}')
        assert failing.returncode == 1
        assert "FUNCTION_ERROR: ValueError: asked to fail" in failing.stderr
        listed = shoal("faas", "functions", "--json")
        assert listed.returncode == 0, listed.stderr
        by_name = {f["function_name"]: f for f in json.loads(listed.stdout)}
        assert set(by_name) == {"count", "upper"}
        assert by_name["count"]["containers"] == 1 and by_name["count"]["in_flight"] == 0
        assert by_name["upper"]["memory_in_bytes"] == 64 << 20
    finally:
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert "stopped: 3 call(s)" in out and "all removed" in out, out
    assert not (agents.home / "faas" / "scheduler.addr").exists()
    gone = shoal("faas", "invoke", "count")
    assert gone.returncode == 6 and "no scheduler running here" in gone.stderr, gone


def test_a_bad_functions_file_is_one_line_and_exit_2(agents: Agents, tmp_path: Path) -> None:
    agents.start("n1")
    agents.inventory()
    f = tmp_path / "functions.toml"
    f.write_text('[functions.a]\nhandler = "m:f"\nmemory = 5\n')
    r = shoal("faas", "scheduler", "-w", "n1", "--functions", str(f))
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("shoal: error: ") and "unknown key(s) memory" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ([], "give the nodes: -w NODESET, or --from-controller"),
        (["-w", "n1", "--from-controller"], "(not both)"),
        (["-w", "n1", "--pool", "gpu"], "--pool and --controller go with --from-controller"),
    ],
)
def test_where_the_nodes_come_from_is_said_once(args: list[str], says: str) -> None:
    r = shoal("faas", "scheduler", *args)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("shoal: error: ") and says in r.stderr, r.stderr


def test_replay_runs_a_trace_beside_its_simulation(agents: Agents, tmp_path: Path) -> None:
    agents.start("n1")
    agents.start("n2")
    agents.inventory()
    g = shoal("faas", "trace", "generate", "--out", str(tmp_path / "t"), "--burst",
              "--functions", "2", "--calls", "60", "--seed", "3")  # fmt: skip
    assert g.returncode == 0, g.stderr
    r = shoal("faas", "replay", "--trace", str(tmp_path / "t"), "-w", "n[1-2]", "--speed", "100",
              "--node-memory", "2048", "--learn", "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    real, sim = out["real"], out["simulated"]
    assert real["calls"] == sim["calls"] == 60
    assert real["errors"] == 0 and sim["errors"] == 0, real["first_errors"]
    assert 2 <= real["cold"] <= 60 and real["containers"] >= 2  # both functions started once
    assert 0 < sim["cold_start_s"] < 30  # the start the run measured, given to the simulator
    wait_for(lambda: not agents.workers(), "every container removed after the replay")
    r = shoal("faas", "replay", "--trace", str(tmp_path / "t"), "-w", "n[1-2]", "--speed", "0")
    assert r.returncode == 2 and "speed must be positive" in r.stderr
