"""`shoal bench plan`: every host's facts through shoal.fanout, the slot plan
of every layout on it, and every check a campaign must pass before anything
starts: sandboxes, memory per slot against the host and each NUMA node,
scratch free space (df on the node), the command being there, THP and
hugepages as the campaign asks. Nothing is started."""

from __future__ import annotations

import shlex
from dataclasses import asdict, dataclass, field
from typing import Any

from google.protobuf import json_format

from shoal.bench import cpulist
from shoal.bench.campaign import Campaign
from shoal.bench.slots import LayoutPlan, PlanError, Slot, plan_layout
from shoal.bench.units import human, parse_size
from shoal.core.config import Settings
from shoal.core.wire import pb
from shoal.errors import EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE, UsageError

PROBE_TIMEOUT = 30.0


@dataclass
class Check:
    host: str
    name: str
    ok: bool
    detail: str


@dataclass
class Preflight:
    campaign: str
    plans: list[LayoutPlan] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    recorded: dict[str, dict[str, Any]] = field(default_factory=dict)  # per host

    @property
    def ok(self) -> bool:
        return all(k.ok for k in self.checks)

    @property
    def exit_code(self) -> int:
        if any(not k.ok and k.name == "reachable" for k in self.checks):
            return EXIT_UNREACHABLE
        return EXIT_OK if self.ok else EXIT_USAGE

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        for p in d["plans"]:
            for s in p["slots"]:
                s["cpu_list"] = cpulist.fold(s["cpus"])
        return {**d, "ok": self.ok, "exit_code": self.exit_code}


def program_of(command: str) -> str | None:
    """The program a command line starts (None: a placeholder or shell syntax decides)."""
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    for w in words:
        if "=" in w and not w.startswith(("/", ".")):
            continue  # VAR=value before the program
        return None if "{" in w or any(ch in w for ch in "|&;<>()$`") else w
    return None


def probe_command(c: Campaign) -> str | None:
    """One shell line printing key=value facts that the agent's facts lack."""
    parts = []
    if c.scratch is not None:
        d = shlex.quote(c.scratch.dir)
        parts.append(
            f"if [ -d {d} ]; then df -Pk {d} | awk 'NR==2 {{print \"scratch_free=\" $4 * 1024}}';"
            f" [ -w {d} ] && echo scratch_writable=1 || echo scratch_writable=0;"
            " else echo scratch_missing=1; fi"
        )
    prog = program_of(c.command.run) if c.command else None
    if prog:
        q = shlex.quote(prog)
        parts.append(f"command -v -- {q} >/dev/null 2>&1 && echo command=1 || echo command=0")
    return "; ".join(parts) or None


def _kv(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def _memory_checks(host: str, f: pb.Facts, label: str, slots: list[Slot]) -> list[Check]:
    need = sum(s.memory for s in slots)
    if not need:
        return []
    out = []
    each = human(slots[0].memory) if len({s.memory for s in slots}) == 1 else "various"
    if need > f.memory_available:
        out.append(
            Check(host, "memory", False,
                  f"layout {label}: {len(slots)} slot(s) x {each} = {human(need)} > "
                  f"{human(f.memory_available)} available (of {human(f.memory_total)})")
        )  # fmt: skip
    for m in f.topology.nodes:
        on = [s for s in slots if m.node in s.mems]
        want = sum(s.memory / len(s.mems) for s in on)
        if on and want > m.memory_total:
            out.append(
                Check(host, "memory", False,
                      f"layout {label}: NUMA node {m.node}: {len(on)} slot(s) need "
                      f"{human(want)}, it has {human(m.memory_total)}")
            )  # fmt: skip
    if not out:
        out.append(
            Check(host, "memory", True,
                  f"layout {label}: {len(slots)} x {each} = {human(need)} of "
                  f"{human(f.memory_available)} available")
        )  # fmt: skip
    return out


def _host_checks(host: str, f: pb.Facts, c: Campaign) -> list[Check]:
    t = f.topology
    out = []
    if t.cgroup_version == 0:
        out.append(Check(host, "sandbox", False, "no cgroups on this node: slots cannot be pinned"))
    else:
        need = ["cpuset"] + (["memory"] if c.command and c.command.memory is not None else [])
        missing = [w for w in need if w not in t.cgroup_controllers]
        ok = not missing
        detail = f"cgroup v{t.cgroup_version}: " + (
            ", ".join(t.cgroup_controllers) if ok else f"no {', '.join(missing)} controller"
        )
        out.append(Check(host, "sandbox", ok, detail))
    if c.host.thp is None:
        out.append(Check(host, "thp", True, f"transparent hugepages: {t.thp or 'unknown'}"))
    else:
        ok = t.thp == c.host.thp
        detail = f"transparent hugepages: {t.thp or 'unknown'}" + (
            "" if ok else f", the campaign needs {c.host.thp}"
        )
        out.append(Check(host, "thp", ok, detail))
    gov = t.governor or "none (no cpufreq)"
    ok = c.host.governor is None or t.governor == c.host.governor
    why = "" if ok else f", the campaign needs {c.host.governor} on every CPU"
    out.append(Check(host, "governor", ok, f"cpufreq governor: {gov}{why}"))
    have = sum(h.size * h.total for m in t.nodes for h in m.hugepages)
    if c.host.hugepages is None:
        out.append(Check(host, "hugepages", True, f"hugepages reserved: {human(have)}"))
    else:
        if c.host.hugepages == "off":
            ok, want = have == 0, "none"
        else:
            ok, want = have >= parse_size(c.host.hugepages), f"at least {c.host.hugepages}"
        detail = f"hugepages reserved: {human(have)}" + (
            "" if ok else f", the campaign needs {want}"
        )
        out.append(Check(host, "hugepages", ok, detail))
    return out


def _probe_checks(host: str, c: Campaign, probe: dict[str, str], slots: int) -> list[Check]:
    out = []
    if c.scratch is not None:
        d = c.scratch.dir
        need = c.scratch.free_bytes * slots
        if "scratch_missing" in probe:
            out.append(Check(host, "scratch", False, f"{d}: no such directory on this node"))
        elif probe.get("scratch_writable") != "1":
            out.append(Check(host, "scratch", False, f"{d}: not writable on this node"))
        else:
            free = int(float(probe.get("scratch_free", "0")))
            ok = free >= need
            detail = f"{d}: {human(free)} free, {slots} slot(s) x {human(c.scratch.free_bytes)}"
            out.append(Check(host, "scratch", ok, detail + (" needed" if not ok else "")))
    prog = program_of(c.command.run) if c.command else None
    if prog and "command" in probe:
        found = probe["command"] == "1"
        out.append(Check(host, "command", found, f"{prog}: {'found' if found else 'not found'}"))
    return out


def check_host(
    host: str, f: pb.Facts, c: Campaign, probe: dict[str, str] | None = None
) -> tuple[list[LayoutPlan], list[Check]]:
    """The plans and checks of one host from its facts (and its probe output)."""
    plans, checks = [], _host_checks(host, f, c)
    for lay in c.layouts:
        try:
            p = plan_layout(host, f.topology, lay)
        except PlanError as e:
            checks.append(Check(host, "layout", False, f"{lay.label}: {e.message}"))
            continue
        n = len(p.slots)
        if c.command is not None:
            p.slots = [
                Slot(s.index, s.cpus, s.cores, s.mems, c.command.memory_for(s.threads, s.cores, n))
                for s in p.slots
            ]
        idle = f", {p.idle_cores} core(s) idle" if p.idle_cores else ""
        checks.append(Check(host, "layout", True, f"{lay.label}: {n} slot(s){idle}"))
        checks.extend(Check(host, "layout", True, f"{lay.label}: {note}") for note in p.notes)
        checks.extend(_memory_checks(host, f, lay.label, p.slots))
        plans.append(p)
    if probe is not None:
        most = max((len(p.slots) for p in plans), default=1)
        checks.extend(_probe_checks(host, c, probe, most))
    return plans, checks


def recorded(f: pb.Facts) -> dict[str, Any]:
    t = f.topology
    return {
        "hostname": f.hostname,
        "kernel": f.kernel,
        "os": f.os,
        "thp": t.thp,
        "thp_defrag": t.thp_defrag,
        "governor": t.governor or "none (no cpufreq)",
        "hugepages": [
            {"node": m.node, "size": h.size, "total": h.total} for m in t.nodes for h in m.hugepages
        ],
        "cgroup_version": t.cgroup_version,
        "agent_version": f.agent_version,
        "cpus_logical": f.cpus_logical,
        "memory_total": f.memory_total,
        "topology": json_format.MessageToDict(t, preserving_proto_field_name=True),
    }


def preflight(
    c: Campaign, *, nodes: str | None = None, settings: Settings | None = None
) -> Preflight:
    from shoal import fanout

    target = nodes or c.nodes
    if not target:
        raise UsageError(f'campaign {c.name}: no nodes (set nodes = "..." or give -w)')
    if not c.layouts:
        raise UsageError(f"campaign {c.name}: no [[layouts]] to plan")
    s = settings or Settings.load()
    facts = fanout.facts(target, settings=s)
    cmd = probe_command(c)
    probes = fanout.run(target, cmd, timeout=PROBE_TIMEOUT, settings=s) if cmd else None
    out = Preflight(c.name)
    for node in facts:
        if node.facts is None:
            why = f"{node.state}: {node.reason}" if node.reason else str(node.state)
            out.checks.append(Check(node.name, "reachable", False, why))
            continue
        probe: dict[str, str] | None = None
        if probes is not None:
            pr = probes[node.name]
            if pr.ok:
                probe = _kv(pr.stdout)
            else:
                why = pr.reason or pr.stderr.strip() or f"exit {pr.exit_code}"
                out.checks.append(Check(node.name, "probe", False, f"{pr.state}: {why}"))
        plans, checks = check_host(node.name, node.facts, c, probe)
        out.plans += plans
        out.checks += checks
        out.recorded[node.name] = recorded(node.facts)
    return out
