"""`shoal bench plan`: the checks of one host from facts laid out as real
machines, then the whole preflight against real agents (facts and a df probe
through shoal.fanout), as a library call and as the command."""

from __future__ import annotations

import json
from pathlib import Path

from agentproc import Agents, shoal
from benchutil import topo

from shoal.bench import parse_campaign
from shoal.bench.preflight import check_host, preflight, program_of
from shoal.core.config import Settings
from shoal.core.wire import pb

GiB = 1 << 30


def xeon_facts(available: int = 180 * GiB) -> pb.Facts:
    t = topo("xeon-2s-smt")
    t.cgroup_version = 1
    t.cgroup_controllers.extend(["cpuset", "cpu", "cpuacct", "memory", "pids"])
    return pb.Facts(hostname="cn1", memory_total=192 * GiB, memory_available=available, topology=t)


def campaign(extra: str = "", layouts: str = "[[layouts]]\nslots = 2\n") -> str:
    return layouts + extra


def failed(checks: list) -> list[tuple[str, str]]:  # type: ignore[type-arg]
    return [(k.name, k.detail) for k in checks if not k.ok]


def test_a_memory_formula_that_exceeds_the_host_is_refused() -> None:
    c = parse_campaign(campaign('[command]\nrun = "x"\nmemory = "45GiB + {threads} * 2GiB"\n'))
    plans, checks = check_host("cn1", xeon_facts(), c)
    assert [s.memory for s in plans[0].slots] == [(45 + 32 * 2) * GiB] * 2
    assert failed(checks) == [
        ("memory", "layout 2slots: 2 slot(s) x 109.0 GiB = 218.0 GiB > 180.0 GiB available "
                   "(of 192.0 GiB)"),
        ("memory", "layout 2slots: NUMA node 0: 1 slot(s) need 109.0 GiB, it has 96.0 GiB"),
        ("memory", "layout 2slots: NUMA node 1: 1 slot(s) need 109.0 GiB, it has 96.0 GiB"),
    ]  # fmt: skip


def test_memory_that_fits_passes_and_is_set_per_slot() -> None:
    c = parse_campaign(campaign('[command]\nrun = "x"\nmemory = "8GiB + {threads} * 1GiB"\n'))
    plans, checks = check_host("cn1", xeon_facts(), c)
    assert failed(checks) == []
    assert [s.memory for s in plans[0].slots] == [40 * GiB, 40 * GiB]


def test_thp_and_hugepages_as_the_campaign_asks() -> None:
    c = parse_campaign(campaign('[host]\nthp = "never"\nhugepages = "off"\n'))
    _, checks = check_host("cn1", xeon_facts(), c)
    assert failed(checks) == [
        ("thp", "transparent hugepages: always, the campaign needs never"),
        ("hugepages", "hugepages reserved: 2.0 GiB, the campaign needs none"),
    ]


def test_the_cpufreq_governor_is_read_from_sysfs_and_checked(tmp_path: Path) -> None:
    from shoal.agent.topology import governor

    for cpu, gov in ((0, "performance"), (1, "powersave"), (2, "performance")):
        d = tmp_path / f"devices/system/cpu/cpu{cpu}/cpufreq"
        d.mkdir(parents=True)
        (d / "scaling_governor").write_text(gov + "\n")
    assert governor(tmp_path) == "performance,powersave"
    assert governor(tmp_path / "none") == ""
    c = parse_campaign(campaign('[host]\ngovernor = "performance"\n'))
    facts = xeon_facts()
    facts.topology.governor = "performance,powersave"
    assert failed(check_host("cn1", facts, c)[1]) == [
        ("governor", "cpufreq governor: performance,powersave, the campaign needs performance"
                     " on every CPU"),
    ]  # fmt: skip
    facts.topology.governor = "performance"
    assert failed(check_host("cn1", facts, c)[1]) == []


def test_a_layout_that_does_not_fit_is_a_failed_check_naming_host_and_numbers() -> None:
    c = parse_campaign(campaign(layouts="[[layouts]]\ncores_per_slot = 20\n"))
    plans, checks = check_host("cn1", xeon_facts(), c)
    assert plans == []
    assert failed(checks) == [
        ("layout", "20core: host cn1: 1 slot(s) of 20 cores do not fit within its NUMA nodes "
                   "(2 node(s) of 16, 16 usable cores: 0 slot(s)); set span_numa = true or use "
                   "fewer cores per slot"),
    ]  # fmt: skip


def test_a_host_without_cgroups_cannot_have_slots() -> None:
    f = xeon_facts()
    f.topology.cgroup_version = 0
    _, checks = check_host("cn1", f, parse_campaign(campaign()))
    assert failed(checks) == [("sandbox", "no cgroups on this node: slots cannot be pinned")]


def test_the_program_of_a_command_line() -> None:
    assert program_of("benchy force --p2") == "benchy"
    assert program_of("RUST_LOG=info /opt/benchy force") == "/opt/benchy"
    assert program_of("{scratch}/bin/x") is None
    assert program_of("cd /x && make") == "cd"


def _agents(agents: Agents, n: int = 2) -> Settings:
    for i in range(1, n + 1):
        agents.start(f"n{i}")
    return Settings.load(inventory=agents.inventory())


def test_preflight_on_real_agents(agents: Agents, tmp_path: Path) -> None:
    s = _agents(agents)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    text = (
        f'nodes = "n[1-2]"\n[[layouts]]\nslots = 1\n[command]\nrun = "python3 -c pass"\n'
        f'memory = "64MiB"\n[scratch]\ndir = "{scratch}"\nfree = "1MiB"\n'
    )
    r = preflight(parse_campaign(text), settings=s)
    assert r.ok and r.exit_code == 0, failed(r.checks)
    assert sorted(p.host for p in r.plans) == ["n1", "n2"]
    assert {k.name for k in r.checks} >= {"layout", "memory", "scratch", "command"}
    assert set(r.recorded) == {"n1", "n2"} and all(v["kernel"] for v in r.recorded.values())


def test_plan_command_reports_every_failed_check_and_exits_2(
    agents: Agents, tmp_path: Path
) -> None:
    _agents(agents)
    f = tmp_path / "c.toml"
    f.write_text(
        'nodes = "n[1-2]"\n[[layouts]]\nslots = 1\n[command]\nrun = "benchy-not-here force"\n'
        f'[scratch]\ndir = "{tmp_path / "nope"}"\nfree = "1GiB"\n'
    )
    cp = shoal("bench", "plan", str(f))
    assert cp.returncode == 2, cp.stderr
    lines = sorted(cp.stderr.splitlines())
    assert lines == [
        "shoal: bench plan: n1: command: benchy-not-here: not found",
        f"shoal: bench plan: n1: scratch: {tmp_path / 'nope'}: no such directory on this node",
        "shoal: bench plan: n2: command: benchy-not-here: not found",
        f"shoal: bench plan: n2: scratch: {tmp_path / 'nope'}: no such directory on this node",
    ]
    f.write_text(
        f'nodes = "n1"\n[[layouts]]\nslots = 1\n[scratch]\ndir = "{tmp_path}"\nfree = "1000TiB"\n'
    )
    cp = shoal("bench", "plan", str(f), "--json")
    assert cp.returncode == 2
    data = json.loads(cp.stdout)
    (bad,) = [k for k in data["checks"] if not k["ok"]]
    assert bad["name"] == "scratch" and bad["detail"].endswith("1 slot(s) x 1000.0 TiB needed")
    assert data["plans"][0]["host"] == "n1"


def test_plan_of_an_unreachable_node_exits_4(agents: Agents, tmp_path: Path) -> None:
    agents.start("n1")
    agents.inventory(extra={"n9": "127.0.0.1:1"})
    f = tmp_path / "c.toml"
    f.write_text('nodes = "n1,n9"\n[[layouts]]\nslots = 1\n')
    cp = shoal("bench", "plan", str(f))
    assert cp.returncode == 4
    assert [ln.split(": ")[2:4] for ln in cp.stderr.splitlines()] == [["n9", "reachable"]]
