"""LocalCluster: real agent processes on this machine, found again through
state.json, reachable through the inventory it writes, gone after down()."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest
from agentproc import shoal, wait_for

from shoal.deploy import LocalCluster
from shoal.errors import ClusterError

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="namespaces need root")


def run_json(*args: str) -> dict[str, Any]:
    r = shoal(*args)
    assert r.stdout, r.stderr
    doc: dict[str, Any] = json.loads(r.stdout)
    return doc


def accepts(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=5):
            return True
    except OSError:
        return False


def test_start_runs_a_process_per_node_and_writes_the_inventory(cluster: Any) -> None:
    c = cluster(3)
    assert c.names == ["node1", "node2", "node3"]
    assert len(c.state.procs) == 3
    assert all(psutil.pid_exists(p.pid) for p in c.state.procs)
    assert all(accepts(a) for a in c.addresses.values())
    for f in (c.inventory_path, c.default_inventory):
        text = f.read_text()
        for name, addr in c.addresses.items():
            assert f'{name} = "{addr}"' in text
    # every process printed its ready line into its log
    for p in c.state.procs:
        assert f"ready {p.names[0]} " in Path(p.log).read_text()


def test_state_is_found_again_by_another_instance(cluster: Any, shoal_home: Path) -> None:
    c = cluster(2)
    again = LocalCluster(shoal_home)
    assert again.addresses == c.addresses
    assert again.is_up()


def test_nodes_answer_through_the_written_inventory(cluster: Any) -> None:
    cluster(3)
    doc = run_json("ping", "-w", "node[1-3]", "--json")
    assert doc["summary"] == {"PASS": {"nodes": "node[1-3]", "count": 3}}


@root_only
def test_each_node_has_its_own_hostname(cluster: Any) -> None:
    cluster(3)
    doc = run_json("run", "-w", "node[1-3]", "--json", "--", "hostname")
    assert {n: d["stdout"].strip() for n, d in doc["nodes"].items()} == {
        "node1": "node1",
        "node2": "node2",
        "node3": "node3",
    }


@root_only
def test_each_node_has_its_own_tmp(cluster: Any, shoal_home: Path) -> None:
    cluster(2)
    marker = f"shoal-who-{os.getpid()}"
    doc = run_json("run", "-w", "node[1-2]", "--json", "--", f"hostname > /tmp/{marker}; ls /tmp")
    assert all(d["state"] == "PASS" for d in doc["nodes"].values()), doc
    assert not Path("/tmp", marker).exists()  # not the machine's /tmp
    for n in ("node1", "node2"):
        assert (shoal_home / "cluster" / n / "tmp" / marker).read_text().strip() == n


def test_per_process_hosts_several_agents_in_one_process(cluster: Any) -> None:
    c = cluster(6, per_process=3)
    assert [p.names for p in c.state.procs] == [
        ["node1", "node2", "node3"],
        ["node4", "node5", "node6"],
    ]
    assert len(set(c.addresses.values())) == 6
    doc = run_json("ping", "-w", "node[1-6]", "--json")
    assert doc["summary"] == {"PASS": {"nodes": "node[1-6]", "count": 6}}


def test_a_stopped_node_is_unreachable_and_comes_back(cluster: Any) -> None:
    c = cluster(3)
    pid = c.proc_of("node2").pid
    c.kill("node2")
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    doc = run_json("ping", "-w", "node[1-3]", "--json")
    assert doc["nodes"]["node2"]["state"] == "UNREACHABLE"
    assert doc["nodes"]["node1"]["state"] == "PASS"
    c.start_one("node2")
    doc = run_json("ping", "-w", "node[1-3]", "--json")
    assert doc["summary"] == {"PASS": {"nodes": "node[1-3]", "count": 3}}


def test_a_second_start_is_refused_while_up(cluster: Any, shoal_home: Path) -> None:
    cluster(1)
    with pytest.raises(ClusterError, match="already up"):
        LocalCluster(shoal_home).start(1)


def test_a_user_inventory_is_left_alone(cluster: Any, shoal_home: Path) -> None:
    mine = shoal_home / "inventory.toml"
    mine.write_text('[nodes]\ncn1 = "10.0.0.1"\n')
    c = cluster(2)
    assert mine.read_text() == '[nodes]\ncn1 = "10.0.0.1"\n'
    assert "node1" in c.inventory_path.read_text()
    c.down()
    assert mine.exists()


def test_down_leaves_no_process_and_no_state(cluster: Any) -> None:
    c = cluster(4, per_process=2)
    pids = [p.pid for p in c.state.procs]
    assert c.down() == 2
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not c.state_file.exists()
    assert not c.default_inventory.exists()
    assert c.down() == 0  # idempotent


def netns_names() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


@root_only
def test_netns_nodes_have_own_addresses_shaped_links_and_go_away(cluster: Any) -> None:
    c = cluster(3, netns=True, rate="200mbit")
    spaces = dict(c.state.netns)
    assert set(spaces.values()) <= netns_names()
    doc = run_json("run", "-w", "node[1-3]", "--json", "--", "ip -4 -o addr show eth0; hostname")
    for name, d in doc["nodes"].items():
        assert d["state"] == "PASS", d
        addr = c.addresses[name].rsplit(":", 1)[0]
        assert f"inet {addr}/24" in d["stdout"]
        assert d["stdout"].split()[-1] == name
    for ns in spaces.values():
        qdisc = subprocess.run(
            ["ip", "netns", "exec", ns, "tc", "qdisc", "show", "dev", "eth0"],
            capture_output=True,
            text=True,
        ).stdout
        assert "tbf" in qdisc and "200Mbit" in qdisc, qdisc

    c.cut("node2")
    doc = run_json("ping", "-w", "node[1-3]", "--json")
    assert doc["nodes"]["node2"]["state"] == "UNREACHABLE"
    assert doc["nodes"]["node1"]["state"] == doc["nodes"]["node3"]["state"] == "PASS"
    c.restore("node2")

    c.down()
    assert not set(spaces.values()) & netns_names()


@root_only
def test_a_node_killed_mid_copy_sweeps_its_spool_when_restarted(
    cluster: Any, tmp_path: Path
) -> None:
    c = cluster(3)
    src = tmp_path / "big"
    src.write_bytes(os.urandom(150_000_000))
    argv = ["copy", "-w", "node[1-3]", "-W", "1", "--chunk-size", "64K", "--stall-timeout", "120"]
    p = subprocess.Popen(
        [sys.executable, "-m", "shoal.cli.main", *argv, str(src), "/tmp/"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    tmp2 = c.dir / "node2" / "tmp"  # node2's private /tmp

    def part() -> list[Path]:
        return [q for q in tmp2.iterdir() if q.name.endswith(".shoal-part")]

    def spooled() -> int:
        try:
            return sum(q.stat().st_size for q in part())
        except FileNotFoundError:  # a claim's transient name (agent/claim.py)
            return -1

    wait_for(lambda: spooled() > 2_000_000, "node2 mid-copy", 60)
    c.kill("node2")
    out, err = p.communicate(timeout=120)
    assert "UNREACHABLE: node2, SUM: 1" in out, err
    (left,) = part()
    size = left.stat().st_size
    c.start_one("node2")
    assert part() == []
    log = Path(c.proc_of("node2").log).read_text()
    assert f"swept 1 stale spool file(s) of transfers that died, {size} bytes" in log
