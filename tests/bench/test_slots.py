"""The slot planner on sysfs trees laid out as real machines are (read with the
agent's own topology reader): a 2-socket Xeon with SMT, a 2-socket EPYC with
four L3 groups per socket, a KVM guest without NUMA."""

from __future__ import annotations

import pytest
from benchutil import topo

from shoal.bench.campaign import Layout
from shoal.bench.slots import PlanError, plan_layout
from shoal.core.wire import pb


def cores(t: pb.Topology, cpus: tuple[int, ...]) -> set[str]:
    by = {c.cpu: c for c in t.cpus}
    return {by[c].siblings for c in cpus}


def assert_disjoint_cores(t: pb.Topology, slots: list) -> None:  # type: ignore[type-arg]
    seen: set[str] = set()
    for s in slots:
        mine = cores(t, s.cpus)
        assert not (mine & seen), f"slot {s.index} shares a core"
        seen |= mine
        by = {c.cpu: c for c in t.cpus}
        for c in s.cpus:  # every sibling of every core is in the slot
            assert {int(x) for x in by[c].siblings.split(",")} <= set(s.cpus)


def test_xeon_two_slots_take_one_socket_each_with_their_smt_siblings() -> None:
    t = topo("xeon-2s-smt")
    p = plan_layout("cn1", t, Layout(slots=2))
    assert [(s.cpu_list, s.mem_list, s.cores, s.threads) for s in p.slots] == [
        ("0-15,32-47", "0", 16, 32),
        ("16-31,48-63", "1", 16, 32),
    ]
    assert p.idle_cores == 0
    assert_disjoint_cores(t, p.slots)


def test_xeon_four_slots_spread_over_both_nodes() -> None:
    t = topo("xeon-2s-smt")
    p = plan_layout("cn1", t, Layout(cores_per_slot=6))
    assert len(p.slots) == 4 and p.idle_cores == 8
    assert [s.mem_list for s in p.slots] == ["0", "1", "0", "1"]
    assert p.slots[0].cpu_list == "0-5,32-37"
    assert_disjoint_cores(t, p.slots)


def test_three_slots_across_two_nodes_are_refused_unless_spanning_is_asked() -> None:
    t = topo("xeon-2s-smt")
    with pytest.raises(PlanError) as e:
        plan_layout("cn7", t, Layout(slots=3))
    assert str(e.value) == (
        "host cn7: 3 slot(s) of 10 cores do not fit within its NUMA nodes "
        "(2 node(s) of 16, 16 usable cores: 2 slot(s)); "
        "set span_numa = true or use fewer cores per slot"
    )
    p = plan_layout("cn7", t, Layout(slots=3, span_numa=True))
    assert [s.mem_list for s in p.slots] == ["0", "0-1", "1"]
    assert [s.cores for s in p.slots] == [10, 10, 10]
    assert_disjoint_cores(t, p.slots)


def test_a_cpu_count_that_splits_smt_pairs_is_refused() -> None:
    t = topo("xeon-2s-smt")
    with pytest.raises(PlanError, match=r"cpus_per_slot = 23 would split SMT siblings \(2 threads"):
        plan_layout("cn1", t, Layout(cpus_per_slot=23))
    p = plan_layout("cn1", t, Layout(cpus_per_slot=16))
    assert [s.threads for s in p.slots] == [16, 16, 16, 16]


def test_one_thread_per_core_leaves_the_siblings_idle() -> None:
    t = topo("xeon-2s-smt")
    p = plan_layout("cn1", t, Layout(slots=2, smt=False))
    assert [s.cpu_list for s in p.slots] == ["0-15", "16-31"]


def test_epyc_slots_fill_whole_l3_groups() -> None:
    t = topo("epyc-2s-ccx")
    p = plan_layout("e1", t, Layout(cores_per_slot=4))
    assert len(p.slots) == 8
    l3 = {c.cpu: c.l3 for c in t.cpus}
    for s in p.slots:
        assert len({l3[c] for c in s.cpus}) == 1, f"slot {s.index} spans L3 groups"
    assert p.slots[0].cpu_list == "0-3,32-35"
    assert_disjoint_cores(t, p.slots)


def test_a_vm_without_numa_gets_slots_without_memory_nodes() -> None:
    t = topo("vm-nonuma")
    p = plan_layout("vm1", t, Layout(slots=2))
    assert [(s.cpu_list, s.mems) for s in p.slots] == [("0-1", ()), ("2-3", ())]
    with pytest.raises(PlanError, match="host vm1: 5 slots do not fit in 4 core"):
        plan_layout("vm1", t, Layout(slots=5))


def test_a_core_half_outside_the_agents_cpuset_is_left_out() -> None:
    t = topo("xeon-2s-smt")
    t.cpus_allowed = "0-31,33-63"  # cpu 32, the sibling of cpu 0, is not ours
    p = plan_layout("cn1", t, Layout(slots=2))
    assert 0 not in p.slots[0].cpus and 32 not in p.slots[0].cpus
    assert p.notes == ["1 core(s) left out: only some of their SMT siblings are usable"]
    assert [s.cores for s in p.slots] == [15, 15]
