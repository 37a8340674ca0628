"""The slot planner: a host's topology (from its facts) and a layout -> cpuset
slots, as BenchExec does for one host. No two slots share a physical core
(a core's SMT siblings always go together), a slot stays within one NUMA node
(or package, where the host shows no NUMA) unless the layout allows
spanning, and its memory nodes are those of its CPUs. A layout that does not
fit is refused with the host and the numbers."""

from __future__ import annotations

from dataclasses import dataclass, field

from shoal.bench import cpulist
from shoal.bench.campaign import Layout
from shoal.core.wire import pb
from shoal.errors import UsageError


class PlanError(UsageError):
    """A layout that cannot be laid on a host."""


@dataclass(frozen=True)
class Core:
    cpus: tuple[int, ...]  # its SMT siblings, lowest first
    domain: int  # NUMA node, or package without NUMA
    node: int  # NUMA node, -1: unknown
    l3: int


@dataclass(frozen=True)
class Slot:
    index: int
    cpus: tuple[int, ...]
    cores: int
    mems: tuple[int, ...]  # empty: the host shows no NUMA nodes
    memory: int = 0  # bytes, 0: no limit

    @property
    def threads(self) -> int:
        return len(self.cpus)

    @property
    def cpu_list(self) -> str:
        return cpulist.fold(self.cpus)

    @property
    def mem_list(self) -> str:
        return cpulist.fold(self.mems)


@dataclass
class LayoutPlan:
    host: str
    layout: str
    slots: list[Slot]
    idle_cores: int  # usable cores no slot got
    notes: list[str] = field(default_factory=list)


def cores_of(host: str, topo: pb.Topology) -> tuple[list[Core], list[str]]:
    """The usable physical cores (every sibling online and in the agent's cpuset)."""
    allowed = set(cpulist.parse(topo.cpus_allowed)) if topo.cpus_allowed else None
    by_cpu = {c.cpu: c for c in topo.cpus}
    usable = {c for c in by_cpu if allowed is None or c in allowed}
    seen: set[tuple[int, ...]] = set()
    cores, notes = [], []
    partial = 0
    for c in topo.cpus:
        sibs = tuple(cpulist.parse(c.siblings) or [c.cpu])
        if sibs in seen:
            continue
        seen.add(sibs)
        if not all(s in usable for s in sibs):
            partial += any(s in usable for s in sibs)
            continue
        first = by_cpu[sibs[0]]
        domain = first.node if first.node >= 0 else max(first.package, 0)
        cores.append(Core(sibs, domain, first.node, first.l3))
    if partial:
        notes.append(f"{partial} core(s) left out: only some of their SMT siblings are usable")
    if not cores:
        raise PlanError(f"host {host}: no usable CPU in its facts")
    cores.sort(key=lambda k: (k.domain, k.l3, k.cpus[0]))  # fill an L3 group before the next
    return cores, notes


def _per_slot(host: str, layout: Layout, cores: list[Core]) -> int:
    """Cores per slot."""
    if layout.cpus_per_slot:
        widths = {len(k.cpus) if layout.smt else 1 for k in cores}
        if len(widths) > 1:
            raise PlanError(
                f"host {host}: cores have {sorted(widths)} threads each: "
                "cpus_per_slot cannot keep SMT siblings together; use cores_per_slot"
            )
        w = widths.pop()
        if layout.cpus_per_slot % w:
            raise PlanError(
                f"host {host}: cpus_per_slot = {layout.cpus_per_slot} would split SMT siblings "
                f"({w} threads per core): use a multiple of {w}"
            )
        return layout.cpus_per_slot // w
    if layout.cores_per_slot:
        return layout.cores_per_slot
    assert layout.slots
    per = len(cores) // layout.slots
    if per == 0:
        raise PlanError(f"host {host}: {layout.slots} slots do not fit in {len(cores)} core(s)")
    return per


def _domains(cores: list[Core]) -> dict[int, list[Core]]:
    out: dict[int, list[Core]] = {}
    for k in cores:
        out.setdefault(k.domain, []).append(k)
    return out


def _place(host: str, layout: Layout, cores: list[Core], per: int) -> list[list[Core]]:
    want = layout.slots
    if layout.span_numa:
        fit = len(cores) // per
        if fit == 0 or (want and fit < want):
            n = want or 1
            raise PlanError(
                f"host {host}: {n} slot(s) of {per} cores need {n * per} cores, "
                f"it has {len(cores)} usable"
            )
        return [cores[i * per : (i + 1) * per] for i in range(want or fit)]
    doms = _domains(cores)
    fit = sum(len(d) // per for d in doms.values())
    if fit == 0 or (want and fit < want):
        sizes = ", ".join(f"{len(d)}" for d in doms.values())
        n = want or 1
        raise PlanError(
            f"host {host}: {n} slot(s) of {per} cores do not fit within its NUMA nodes "
            f"({len(doms)} node(s) of {sizes} usable cores: {fit} slot(s)); "
            "set span_numa = true or use fewer cores per slot"
        )
    taken = dict.fromkeys(doms, 0)
    out: list[list[Core]] = []
    while len(out) < (want or fit):  # round robin: slots spread over the nodes
        for d, ks in doms.items():
            if len(out) < (want or fit) and taken[d] + per <= len(ks):
                out.append(ks[taken[d] : taken[d] + per])
                taken[d] += per
    return out


def plan_layout(host: str, topo: pb.Topology, layout: Layout) -> LayoutPlan:
    cores, notes = cores_of(host, topo)
    per = _per_slot(host, layout, cores)
    groups = _place(host, layout, cores, per)
    slots = []
    for i, ks in enumerate(groups):
        cpus = tuple(sorted(c for k in ks for c in (k.cpus if layout.smt else k.cpus[:1])))
        mems = tuple(sorted({k.node for k in ks if k.node >= 0}))
        slots.append(Slot(i, cpus, len(ks), mems))
    used = sum(len(g) for g in groups)
    return LayoutPlan(host, layout.label, slots, len(cores) - used, notes)
