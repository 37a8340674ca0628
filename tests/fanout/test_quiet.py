"""Long quiet work and silent peers: keepalive policies that agree on every
hop, a hung relay found in bounded time and its subtree adopted.

Keepalive is set to 1 s here (SHOAL_KEEPALIVE_*) so that the commands can be
quiet for several times every keepalive interval and time-out in a few
seconds; the defaults only scale these up."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from agentproc import Agents, marked, shoal, wait_for

FAST = {"SHOAL_KEEPALIVE_INTERVAL": "1", "SHOAL_KEEPALIVE_TIMEOUT": "1"}


def _start(agents: Agents, n: int) -> Path:
    for i in range(1, n + 1):
        agents.start(f"n{i}", env=FAST)
    return agents.inventory()


def test_a_command_quiet_longer_than_every_timeout_completes(agents: Agents) -> None:
    inv = _start(agents, 3)
    # -W 1: n1 -> n2 -> n3, so the quiet stream crosses two relay hops.
    cp = shoal(
        "run", "--inventory", str(inv), "-W", "1", "-w", "n[1-3]", "--json", "--",
        "sleep 8; echo done",
        env={**os.environ, **FAST},
    )  # fmt: skip
    doc = json.loads(cp.stdout)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert {n: d["stdout"] for n, d in doc["nodes"].items()} == {
        "n1": "done\n", "n2": "done\n", "n3": "done\n"
    }  # fmt: skip


def test_relay_channels_idle_between_fan_outs_stay_usable(agents: Agents) -> None:
    inv = _start(agents, 3)
    env = {**os.environ, **FAST}
    argv = ["run", "--inventory", str(inv), "-W", "1", "-w", "n[1-3]", "--", "true"]
    assert shoal(*argv, env=env).returncode == 0
    time.sleep(6)  # the relays' reused channels idle for six keepalive intervals
    cp = shoal(*argv, env=env)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert cp.stdout.splitlines()[-1] == "PASS: n[1-3], SUM: 3"


def test_hung_relay_is_found_and_its_finished_child_reported(
    agents: Agents, tmp_path: Path
) -> None:
    inv = _start(agents, 3)
    marker = f"shoal-test-{uuid.uuid4().hex}"
    go = tmp_path / "go"
    cmd = f"while [ ! -e {go} ]; do sleep 0.05; done; echo {marker}"
    client = subprocess.Popen(
        [sys.executable, "-m", "shoal.cli.main", "run", "--inventory", str(inv), "-W", "1",
         "-w", "n[1-3]", "--json", "--", cmd],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **FAST},
    )  # fmt: skip
    n2 = agents.started[1]
    try:
        wait_for(lambda: len(marked(marker)) >= 3, "all three commands running")
        n2.proc.send_signal(signal.SIGSTOP)  # n1 -> n2 (hung) -> n3
        go.touch()  # n3 finishes; its result is stuck in the hung n2
        out, _ = client.communicate(timeout=60)
    finally:
        n2.proc.send_signal(signal.SIGCONT)
        if client.poll() is None:
            client.kill()
    doc = json.loads(out)
    assert doc["nodes"]["n1"]["state"] == "PASS"
    assert doc["nodes"]["n2"]["state"] == "UNREACHABLE"
    assert "ping timeout" in doc["nodes"]["n2"]["reason"].lower()
    assert doc["nodes"]["n3"]["state"] == "PASS", doc["nodes"]["n3"]
    assert doc["nodes"]["n3"]["stdout"] == f"{marker}\n"  # replayed, once
    n3_log = agents.started[2].log_text()
    assert "n1 takes it over" in n3_log
    assert n3_log.count("exec for client") == 2  # run once, reported through n1


def test_a_client_gone_for_good_leaves_no_command_behind(agents: Agents) -> None:
    inv = _start(agents, 3)
    marker = f"shoal-test-{uuid.uuid4().hex}"
    client = subprocess.Popen(
        [sys.executable, "-m", "shoal.cli.main", "run", "--inventory", str(inv), "-W", "1",
         "-w", "n[1-3]", "--", f"sleep 600; echo {marker}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, **FAST},
    )  # fmt: skip
    try:
        wait_for(lambda: len(marked(marker)) == 3, "the command running on three nodes")
        client.kill()  # no Ctrl-C, no Cancel: the agents find out on their own
        client.wait()
        wait_for(lambda: marked(marker) == [], "the commands gone once nobody adopts them")
        assert "no caller came back" in agents.started[0].log_text()
    finally:
        if client.poll() is None:
            client.kill()
