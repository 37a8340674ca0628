"""`shoal cluster up/status/down` as a user types them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from shoal.deploy import LocalCluster


def shoal(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shoal.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.fixture
def home(shoal_home: Path) -> Iterator[Path]:
    try:
        yield shoal_home
    finally:
        LocalCluster(shoal_home).down()  # whatever the test left running


def test_up_status_down(home: Path) -> None:
    up = shoal("cluster", "up", "-n", "3")
    assert up.returncode == 0, up.stderr
    assert "node[1-3]" in up.stdout
    assert (home / "inventory.toml").exists()

    st = shoal("cluster", "status", "--json")
    rows = json.loads(st.stdout)["nodes"]
    assert [r["name"] for r in rows] == ["node1", "node2", "node3"]
    assert all(r["up"] for r in rows)
    table = shoal("cluster", "status").stdout
    assert "3/3 up" in table

    pids = [r["pid"] for r in rows]
    down = shoal("cluster", "down")
    assert down.returncode == 0
    assert "3 processes stopped" in down.stdout
    assert not any(psutil.pid_exists(p) for p in pids)
    assert not (home / "inventory.toml").exists()
    assert shoal("cluster", "status").stdout.strip() == "no local cluster"


def test_up_twice_is_a_clear_error(home: Path) -> None:
    assert shoal("cluster", "up", "-n", "1").returncode == 0
    again = shoal("cluster", "up", "-n", "1")
    assert again.returncode == 5
    assert "already up" in again.stderr
    assert "Traceback" not in again.stderr


def test_down_without_a_cluster_is_fine(home: Path) -> None:
    r = shoal("cluster", "down")
    assert r.returncode == 0
    assert "no local cluster" in r.stdout


def test_per_process_and_base_port(home: Path) -> None:
    from agentproc import free_port

    base = free_port()
    r = shoal("cluster", "up", "-n", "4", "--per-process", "2", "--base-port", str(base))
    if r.returncode != 0 and "address" in r.stderr.lower():
        pytest.skip(f"ports from {base} were taken meanwhile: {r.stderr}")
    assert r.returncode == 0, r.stderr
    assert "4 nodes, 2 processes" in r.stdout
    rows = json.loads(shoal("cluster", "status", "--json").stdout)["nodes"]
    assert [r["address"] for r in rows] == [f"127.0.0.1:{base + i}" for i in range(4)]
    ping = shoal("ping", "-w", "node[1-4]")
    assert ping.returncode == 0, ping.stdout + ping.stderr
    assert "PASS: node[1-4], SUM: 4" in ping.stdout


def test_user_inventory_is_kept_and_the_way_is_named(home: Path) -> None:
    (home / "inventory.toml").write_text('[nodes]\ncn1 = "10.0.0.1"\n')
    r = shoal("cluster", "up", "-n", "1")
    assert r.returncode == 0, r.stderr
    assert "--inventory" in r.stdout
    assert (home / "inventory.toml").read_text() == '[nodes]\ncn1 = "10.0.0.1"\n'


@pytest.mark.skipif(__import__("os").geteuid() != 0, reason="netns needs root")
def test_netns_up_and_down(home: Path) -> None:
    up = shoal("cluster", "up", "--netns", "3", "--rate", "200mbit")
    assert up.returncode == 0, up.stderr
    assert "own network namespace" in up.stdout
    ping = shoal("ping", "-w", "node[1-3]")
    assert "PASS: node[1-3], SUM: 3" in ping.stdout, ping.stdout + ping.stderr
    spaces = json.loads((home / "cluster" / "netns.json").read_text())["hosts"]
    assert shoal("cluster", "down").returncode == 0
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not any(ns in listed for ns in spaces)


def test_rate_without_netns_is_refused(home: Path) -> None:
    r = shoal("cluster", "up", "-n", "1", "--rate", "200mbit")
    assert r.returncode == 5
    assert "--netns" in r.stderr


def test_status_says_when_a_node_is_down_and_down_cleans_tmp(home: Path) -> None:
    assert shoal("cluster", "up", "-n", "2").returncode == 0
    c = LocalCluster(home)
    c.kill("node2")
    st = shoal("cluster", "status")
    assert st.returncode == 4 and "1/2 up" in st.stdout
    assert shoal("cluster", "status", "--json").returncode == 4
    tmps = list((home / "cluster").glob("*/tmp"))
    if os.geteuid() == 0:  # private /tmp per node
        assert tmps
        (tmps[0] / "left-by-a-command").write_bytes(b"x" * 1000)
    assert shoal("cluster", "down").returncode == 0
    assert list((home / "cluster").glob("*/tmp")) == []
    assert shoal("cluster", "up", "-n", "1").returncode == 0
    assert shoal("cluster", "down", "--keep").returncode == 0
    assert len(list((home / "cluster").glob("*/tmp"))) == (1 if os.geteuid() == 0 else 0)


def test_netns_zero_is_refused(home: Path) -> None:
    r = shoal("cluster", "up", "--netns", "0")
    assert r.returncode == 2 and "at least 1" in r.stderr
    assert not (home / "inventory.toml").exists()


def test_local_cluster_agents_ask_no_cloud_metadata(home: Path) -> None:
    assert shoal("cluster", "up", "-n", "1").returncode == 0
    pid = LocalCluster(home).state.procs[0].pid
    assert psutil.Process(pid).environ().get("SHOAL_METADATA") == "off"
