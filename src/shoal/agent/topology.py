"""The host's CPU and memory topology, read from /sys.

Per online logical CPU: core, package, NUMA node, SMT siblings and its L3
group; per NUMA node: its CPUs, memory and hugepages; the transparent
hugepage mode. What a file does not say (a VM without NUMA, a CPU without
L3) comes out as -1 or empty, never as an error: facts are best effort.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

from shoal.agent.sandbox import parse_list
from shoal.core.wire import pb

SYS = Path("/sys")


def _text(p: Path) -> str:
    try:
        return p.read_text().strip()
    except OSError:
        return ""


def _int(p: Path, default: int = -1) -> int:
    try:
        return int(_text(p))
    except ValueError:
        return default


def _bracketed(p: Path) -> str:
    """The chosen word of a sysfs choice file ("always [madvise] never")."""
    m = re.search(r"\[(\w[\w+]*)\]", _text(p))
    return m.group(1) if m else ""


def _l3_group(cpu_dir: Path) -> int:
    for index in sorted(cpu_dir.glob("cache/index*")):
        if _text(index / "level") == "3":
            shared = _text(index / "shared_cpu_list")
            with contextlib.suppress(ValueError):
                return min(parse_list(shared))
    return -1


def cpus(root: Path = SYS) -> list[pb.Cpu]:
    base = root / "devices/system/cpu"
    online = parse_list(_text(base / "online") or "0")
    node_of: dict[int, int] = {}
    for node in (root / "devices/system/node").glob("node[0-9]*"):
        with contextlib.suppress(ValueError):
            for c in parse_list(_text(node / "cpulist")):
                node_of[c] = int(node.name[4:])
    out = []
    for c in sorted(online):
        d = base / f"cpu{c}"
        t = d / "topology"
        out.append(
            pb.Cpu(
                cpu=c,
                core=_int(t / "core_id"),
                package=_int(t / "physical_package_id"),
                node=node_of.get(c, -1),
                siblings=_text(t / "thread_siblings_list") or str(c),
                l3=_l3_group(d),
            )
        )
    return out


def _meminfo(path: Path) -> dict[str, int]:
    """A node's meminfo ("Node 0 MemTotal:  5334812 kB") in bytes."""
    out = {}
    for line in _text(path).splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[3].isdigit():
            out[parts[2].rstrip(":")] = int(parts[3]) * (1024 if parts[-1] == "kB" else 1)
    return out


def memory_nodes(root: Path = SYS) -> list[pb.MemoryNode]:
    out = []
    nodes = (root / "devices/system/node").glob("node[0-9]*")
    for d in sorted(nodes, key=lambda p: int(p.name[4:])):
        info = _meminfo(d / "meminfo")
        m = pb.MemoryNode(
            node=int(d.name[4:]),
            cpus=_text(d / "cpulist"),
            memory_total=info.get("MemTotal", 0),
            memory_free=info.get("MemFree", 0),
        )
        for h in sorted(d.glob("hugepages/hugepages-*kB"), key=lambda p: int(p.name[10:-2])):
            m.hugepages.add(
                size=int(h.name[10:-2]) * 1024,
                total=_int(h / "nr_hugepages", 0),
                free=_int(h / "free_hugepages", 0),
            )
        out.append(m)
    return out


def topology(root: Path = SYS) -> pb.Topology:
    """Everything but the cgroup part, which the agent's sandbox host fills."""
    thp = root / "kernel/mm/transparent_hugepage"
    return pb.Topology(
        cpus=cpus(root),
        nodes=memory_nodes(root),
        thp=_bracketed(thp / "enabled"),
        thp_defrag=_bracketed(thp / "defrag"),
        governor=governor(root),
    )


def governor(root: Path = SYS) -> str:
    """The CPUs' cpufreq scaling governors, distinct, in CPU order; "" without cpufreq."""
    seen: dict[str, None] = {}
    for f in sorted(root.glob("devices/system/cpu/cpu[0-9]*/cpufreq/scaling_governor")):
        try:
            seen[f.read_text().strip()] = None
        except OSError:
            continue
    return ",".join(seen)
