"""Facts: the CPU topology against /sys read independently, a /sys laid out as
a two-socket SMT host's, `shoal facts` from a real agent, the one builder the
registration uses too, and the metadata endpoints from the settings."""

from __future__ import annotations

import json
import os
from pathlib import Path

import psutil
import pytest
from agentproc import Agents, shoal

from shoal.agent.cgroups import Host
from shoal.agent.facts import collect_facts, plain, registration_facts
from shoal.agent.registration import MetadataEndpoints
from shoal.agent.sandbox import parse_list
from shoal.agent.topology import topology
from shoal.core.config import Settings

SYS = Path("/sys/devices/system")


def test_topology_is_what_sys_says() -> None:
    t = topology()
    cpus = {c.cpu: c for c in t.cpus}
    assert len(cpus) == os.cpu_count()
    assert os.sched_getaffinity(0) <= set(cpus)
    for c in t.cpus:
        top = SYS / f"cpu/cpu{c.cpu}/topology"
        assert c.core == int((top / "core_id").read_text())
        assert c.package == int((top / "physical_package_id").read_text())
        sib = parse_list(c.siblings)
        assert c.cpu in sib
        assert all(parse_list(cpus[s].siblings) == sib for s in sib)  # symmetric
        nodes = [p for p in (SYS / f"cpu/cpu{c.cpu}").iterdir() if p.name.startswith("node")]
        assert [f"node{c.node}"] == [p.name for p in nodes]
    assert len({(c.package, c.core) for c in t.cpus}) == psutil.cpu_count(logical=False)
    assert sorted(m.node for m in t.nodes) == sorted(parse_list((SYS / "node/online").read_text()))
    for m in t.nodes:
        line = (SYS / f"node/node{m.node}/meminfo").read_text().splitlines()[0]
        assert m.memory_total == int(line.split()[3]) * 1024
        sizes = {h.size for h in m.hugepages}
        assert sizes == {
            int(p.name[10:-2]) * 1024 for p in (SYS / f"node/node{m.node}/hugepages").iterdir()
        }
    thp = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    assert f"[{t.thp}]" in thp.split()


def _write(root: Path, rel: str, text: str) -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text + "\n")


def test_a_two_socket_smt_host(tmp_path: Path) -> None:
    """8 logical CPUs: 2 packages x 2 cores x 2 threads (siblings n and n+4),
    one L3 and one NUMA node per package, hugepages reserved on node 1."""
    _write(tmp_path, "devices/system/cpu/online", "0-7")
    for cpu in range(8):
        pkg, core = (cpu % 4) // 2, cpu % 2
        d = f"devices/system/cpu/cpu{cpu}"
        _write(tmp_path, f"{d}/topology/core_id", str(core))
        _write(tmp_path, f"{d}/topology/physical_package_id", str(pkg))
        _write(tmp_path, f"{d}/topology/thread_siblings_list", f"{cpu % 4},{cpu % 4 + 4}")
        _write(tmp_path, f"{d}/cache/index2/level", "2")
        _write(tmp_path, f"{d}/cache/index2/shared_cpu_list", f"{cpu % 4},{cpu % 4 + 4}")
        _write(tmp_path, f"{d}/cache/index3/level", "3")
        l3 = "0-1,4-5" if pkg == 0 else "2-3,6-7"
        _write(tmp_path, f"{d}/cache/index3/shared_cpu_list", l3)
    for node, cpus in ((0, "0-1,4-5"), (1, "2-3,6-7")):
        d = f"devices/system/node/node{node}"
        _write(tmp_path, f"{d}/cpulist", cpus)
        _write(
            tmp_path, f"{d}/meminfo", f"Node {node} MemTotal: 1024 kB\nNode {node} MemFree: 512 kB"
        )
        _write(tmp_path, f"{d}/hugepages/hugepages-2048kB/nr_hugepages", str(node * 100))
        _write(tmp_path, f"{d}/hugepages/hugepages-2048kB/free_hugepages", str(node * 50))
    _write(tmp_path, "kernel/mm/transparent_hugepage/enabled", "[always] madvise never")
    t = plain(topology(tmp_path))
    assert t["cpus"][5] == {
        "cpu": 5,
        "core": 1,
        "package": 0,
        "node": 0,
        "siblings": "1,5",
        "l3": 0,
    }
    assert t["cpus"][6] == {
        "cpu": 6,
        "core": 0,
        "package": 1,
        "node": 1,
        "siblings": "2,6",
        "l3": 2,
    }
    assert t["nodes"][1] == {
        "node": 1, "cpus": "2-3,6-7", "memory_total": 1 << 20, "memory_free": 1 << 19,
        "hugepages": [{"size": 2 << 20, "total": 100, "free": 50}],
    }  # fmt: skip
    assert (t["thp"], t["thp_defrag"]) == ("always", "")


def test_shoal_facts_carries_the_topology_and_the_sandbox_part(agents: Agents) -> None:
    agents.start("n1")
    cp = shoal("facts", "--inventory", str(agents.inventory()), "-w", "n1", "--json")
    f = json.loads(cp.stdout)["nodes"]["n1"]["facts"]
    assert isinstance(f["memory_total"], int)  # not protobuf JSON's string
    t = f["topology"]
    assert len(t["cpus"]) == f["cpus_logical"] == os.cpu_count()
    host = Host.detect()
    assert t["cgroup_version"] == host.version
    assert t["cgroup_controllers"] == host.controllers()
    assert parse_list(t["cpus_allowed"]) <= {c["cpu"] for c in t["cpus"]}
    table = shoal("facts", "--inventory", str(agents.inventory()), "-w", "n1", "--cpus")
    assert table.returncode == 0
    assert f"cgroup v{host.version}" in table.stdout and "SMT siblings" in table.stdout


def test_registration_sends_the_same_facts_in_the_controllers_keys() -> None:
    f = collect_facts(Host.detect())
    d = registration_facts(f)
    assert d["memory"] == f.memory_total and d["hostname"] == f.hostname
    assert d["topology"] == plain(f.topology)
    assert [i["name"] for i in d["interfaces"]] == [i.name for i in f.interfaces]
    assert "memory_available" not in d


def test_metadata_endpoints_come_from_the_settings(
    monkeypatch: pytest.MonkeyPatch, shoal_home: Path
) -> None:
    assert MetadataEndpoints.from_settings(Settings.load()) == MetadataEndpoints()
    (shoal_home / "config.toml").write_text('metadata_gcp = "http://127.0.0.1:9/"\n')
    monkeypatch.setenv("SHOAL_METADATA_AWS", "off")
    ep = MetadataEndpoints.from_settings(Settings.load())
    assert (ep.gcp, ep.aws, ep.alibaba) == ("http://127.0.0.1:9", None, MetadataEndpoints.alibaba)
    monkeypatch.setenv("SHOAL_METADATA", "off")
    assert MetadataEndpoints.from_settings(Settings.load()) == MetadataEndpoints(
        None, None, None, None
    )
