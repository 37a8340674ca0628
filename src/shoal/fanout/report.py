"""Per-node results of a fan-out and their rendering.

Gathered modes (-l, -b, --json) keep at most `cap` bytes per node per stream
and count what they drop; the streaming mode keeps nothing (cap=0), so the
client's memory is bounded whatever a node prints.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from shoal.core.nodeset import fold
from shoal.core.states import NodeState
from shoal.core.wire import pb
from shoal.errors import EXIT_OK

LINE_MAX = 64 * 1024  # a "line" longer than this is flushed in pieces


@dataclass
class NodeResult:
    name: str
    state: NodeState | None = None  # None: no result (yet)
    exit_code: int = 0
    reason: str = ""
    start_ns: int = 0
    end_ns: int = 0
    rtt_ms: float | None = None  # client-side: request sent -> result received
    out: bytearray = field(default_factory=bytearray)
    err: bytearray = field(default_factory=bytearray)
    out_dropped: int = 0
    err_dropped: int = 0
    facts: pb.Facts | None = None
    path: Path | None = None  # gather: where this node's copy landed
    cpu_ns: int = 0  # in a sandbox: user + system of the whole process tree
    peak_memory: int = 0  # in a sandbox: bytes, the whole process tree
    scratch_freed: int = 0  # with a scratch directory: bytes removed with it
    jobs: list[pb.JobStatus] = field(default_factory=list)  # start_job, jobs

    @property
    def stdout(self) -> str:
        return self.out.decode(errors="replace")

    @property
    def stderr(self) -> str:
        return self.err.decode(errors="replace")

    @property
    def ok(self) -> bool:
        return self.state is NodeState.PASS

    @property
    def wall_s(self) -> float:
        """On the node: from the task's start to its result."""
        return (self.end_ns - self.start_ns) / 1e9 if self.end_ns else 0.0


NEVER_RAN = (NodeState.UNREACHABLE, NodeState.REFUSED)  # no accounting to show


def _span(values: list[float], unit: str, fmt: str) -> str:
    lo, hi = min(values), max(values)
    return f"{lo:{fmt}}{unit}" if f"{lo:{fmt}}" == f"{hi:{fmt}}" else f"{lo:{fmt}}-{hi:{fmt}}{unit}"


def acct_text(results: list[NodeResult]) -> str:
    """ "wall 5.02s cpu 4.98s peak 12.3MiB"; over several nodes, each a range."""
    return (
        f"wall {_span([r.wall_s for r in results], 's', '.2f')}"
        f" cpu {_span([r.cpu_ns / 1e9 for r in results], 's', '.2f')}"
        f" peak {_span([r.peak_memory / 2**20 for r in results], 'MiB', '.1f')}"
    )


class Report:
    """One fan-out's results: a NodeResult per node, in node-list order."""

    def __init__(self, nodes: list[str], cap: int) -> None:
        self.order = nodes
        self.nodes = {n: NodeResult(n) for n in nodes}
        self.cap = cap
        self.sent_ns = time.monotonic_ns()
        self.interrupted = False  # cancelled (Ctrl-C) before every node reported

    def __iter__(self) -> Iterator[NodeResult]:
        return (self.nodes[n] for n in self.order)

    def __getitem__(self, node: str) -> NodeResult:
        return self.nodes[node]

    def __len__(self) -> int:
        return len(self.order)

    @property
    def ok(self) -> bool:
        """Every node passed."""
        return all(r.state is NodeState.PASS for r in self)

    def add(self, ev: pb.TaskEvent) -> NodeResult | None:
        r = self.nodes.get(ev.node)
        if r is None:  # a node we did not ask for: ignore
            return None
        kind = ev.WhichOneof("kind")
        if kind == "output":
            data = ev.output.data
            if ev.output.stream == pb.Output.STDERR:
                keep = max(0, min(len(data), self.cap - len(r.err)))
                r.err += data[:keep]
                r.err_dropped += len(data) - keep
            else:
                keep = max(0, min(len(data), self.cap - len(r.out)))
                r.out += data[:keep]
                r.out_dropped += len(data) - keep
        elif kind == "result" and r.state is None:
            res = ev.result
            r.state = NodeState.from_wire(res.state)
            r.exit_code, r.reason = res.exit_code, res.reason
            r.start_ns, r.end_ns = res.timing.start_ns, res.timing.end_ns
            r.cpu_ns, r.peak_memory = res.cpu_ns, res.peak_memory
            r.scratch_freed = res.scratch_freed
            r.rtt_ms = (time.monotonic_ns() - self.sent_ns) / 1e6
        elif kind == "facts":
            r.facts = ev.facts
        elif kind == "job":
            r.jobs.append(ev.job)
        return r

    def missing(self) -> list[str]:
        return [n for n in self.order if self.nodes[n].state is None]

    def finish(self, reason: str) -> None:
        """Give every node without a result one (never leave a node out)."""
        for n in self.missing():
            r = self.nodes[n]
            r.state, r.reason = NodeState.FAILED, reason

    def by_state(self) -> dict[NodeState, list[str]]:
        """Nodes per state that occurred, in NodeState's order."""
        out: dict[NodeState, list[str]] = {}
        for n in self.order:
            s = self.nodes[n].state
            if s is not None:
                out.setdefault(s, []).append(n)
        return {s: out[s] for s in NodeState if s in out}

    def summary_lines(self) -> list[str]:
        return [f"{s}: {fold(ns)}, SUM: {len(ns)}" for s, ns in self.by_state().items()]

    def exit_code(self) -> int:
        states = self.by_state()
        worst = max((s.severity for s in states), default=0)
        if worst == 0:
            return EXIT_OK
        return max(s.exit_code for s in states if s.severity == worst)

    # -- rendering -------------------------------------------------------------

    def _body(self, r: NodeResult, merged: bool) -> bytes:
        body = bytes(r.out) + (bytes(r.err) if merged else b"")
        notes = []
        if r.out_dropped:
            notes.append(f"[… {r.out_dropped} bytes of stdout dropped]")
        if r.err_dropped and merged:
            notes.append(f"[… {r.err_dropped} bytes of stderr dropped]")
        if body and not body.endswith(b"\n"):
            body += b"\n"
        for note in notes:
            body += note.encode() + b"\n"
        return body

    def render_lines(
        self, w: IO[bytes], acct: bool = False, merged: bool = True, labels: bool = True
    ) -> None:
        """-l: per node, in node-list order; acct: its accounting in the header;
        merged: stderr after stdout (else stdout only); labels: the headers (-N: none)."""
        for n in self.order:
            r = self.nodes[n]
            if r.state is None:  # interrupted before it reported
                continue
            extra = f" {acct_text([r])}" if acct and r.state not in NEVER_RAN else ""
            if labels:
                w.write(f">>> {n} [{r.state}]{extra}\n".encode())
            w.write(self._body(r, merged))
            if r.state != "PASS" and r.reason:
                w.write(f"({r.reason})\n".encode())

    def render_blocks(
        self, w: IO[bytes], acct: bool = False, merged: bool = True, labels: bool = True
    ) -> None:
        """-b: identical output and status printed once under a folded header;
        acct: the group's accounting in it (a range over its nodes); merged:
        stderr after stdout (else stdout only); labels: the headers (-N: none)."""
        groups: dict[tuple[bytes, NodeState, int, str], list[str]] = {}
        for n in self.order:
            r = self.nodes[n]
            if r.state is None:
                continue
            reason = r.reason if r.state in ("UNREACHABLE", "REFUSED") else ""
            key = (self._body(r, merged), r.state, r.exit_code, reason)
            groups.setdefault(key, []).append(n)
        for (body, state, code, reason), names in groups.items():
            extra = f" exit {code}" if code else ""
            ran = acct and state not in NEVER_RAN
            usage = f" {acct_text([self.nodes[n] for n in names])}" if ran else ""
            if labels:
                w.write(b"---------------\n")
                w.write(f"{fold(names)} ({len(names)}) [{state}{extra}]{usage}\n".encode())
                w.write(b"---------------\n")
            w.write(body)
            if reason:
                w.write(f"({reason})\n".encode())

    def to_json(self, **extra_per_node: Any) -> dict[str, Any]:
        nodes = {}
        for n in self.order:
            r = self.nodes[n]
            d: dict[str, Any] = {
                "state": r.state,
                "exit_code": r.exit_code,
                "reason": r.reason,
                "stdout": r.out.decode(errors="replace"),
                "stderr": r.err.decode(errors="replace"),
                "stdout_dropped": r.out_dropped,
                "stderr_dropped": r.err_dropped,
                "start": r.start_ns / 1e9 if r.start_ns else None,
                "end": r.end_ns / 1e9 if r.end_ns else None,
                "rtt_ms": round(r.rtt_ms, 3) if r.rtt_ms is not None else None,
                "cpu_s": r.cpu_ns / 1e9,
                "peak_memory": r.peak_memory,
            }
            nodes[n] = d
        summary = {s: {"nodes": fold(ns), "count": len(ns)} for s, ns in self.by_state().items()}
        return {"nodes": nodes, "summary": summary, "exit_code": self.exit_code()}

    def write_json(self, w: IO[str]) -> None:
        json.dump(self.to_json(), w, indent=2)
        w.write("\n")


def _sizes(n: int) -> str:
    return f"{n / 2**30:.1f} GiB"


def topology_text(t: pb.Topology) -> str:
    """ "2 packages, 32 cores, 64 threads, 2 L3"."""
    cores = {(c.package, c.core) for c in t.cpus}
    l3 = {c.l3 for c in t.cpus if c.l3 >= 0}
    packages = {c.package for c in t.cpus}
    return (
        f"{len(packages)} package(s), {len(cores)} core(s), {len(t.cpus)} thread(s), {len(l3)} L3"
    )


def numa_text(t: pb.Topology) -> str:
    """Per node: "0: 0-31 251.9 GiB, 2M x0 1G x0"."""
    parts = []
    for m in t.nodes:
        huge = " ".join(
            f"{h.size >> 20}M x{h.total}" if h.size < 1 << 30 else f"{h.size >> 30}G x{h.total}"
            for h in m.hugepages
        )
        parts.append(f"{m.node}: {m.cpus} {_sizes(m.memory_total)}" + (f", {huge}" if huge else ""))
    return "; ".join(parts)


def facts_tables(report: Report, cpus: bool = False) -> list[Any]:
    """`shoal facts`: one row per node (rich tables); cpus: each node's CPUs too."""
    from datetime import UTC, datetime

    from rich.table import Table
    from rich.text import Text

    def row(table: Any, *cells: Any) -> None:  # text as written: no markup from peers
        for col in table.columns:
            col.overflow = "fold"  # wrap a long word rather than cut it
        table.add_row(*(Text(str(c)) for c in cells))

    t = Table("node", "hostname", "CPUs", "memory", "OS", "kernel", "boot")
    topo = Table("node", "topology", "NUMA nodes (CPUs, memory, hugepages)", "THP", "sandboxes")
    per_cpu: list[Any] = []
    for n in report.order:
        r = report.nodes[n]
        f = r.facts
        if f is None:  # its reason went to stderr as it came (`shoal facts`)
            continue
        boot = datetime.fromtimestamp(f.boot_time, UTC).strftime("%Y-%m-%d %H:%M")
        row(
            t, n, f.hostname, f"{f.cpus_logical}/{f.cpus_physical}", _sizes(f.memory_total),
            f.os, f.kernel, boot,
        )  # fmt: skip
        tp = f.topology
        v = tp.cgroup_version
        boxes = (
            f"cgroup v{v}: {','.join(tp.cgroup_controllers)}; cpus {tp.cpus_allowed}"
            f" mems {tp.mems_allowed}"
            if v
            else "none (process-group kill only)"
        )
        row(topo, n, topology_text(tp), numa_text(tp), tp.thp, boxes)
        if cpus:
            c = Table("CPU", "core", "package", "NUMA", "SMT siblings", "L3 group", title=n)
            for x in tp.cpus:
                row(c, x.cpu, x.core, x.package, x.node, x.siblings, x.l3)
            per_cpu.append(c)
    return [t, topo, *per_cpu]


class LineStreamer:
    """Default mode: print lines as they arrive, prefixed `node: `.

    One partial-line buffer per node and stream, bounded by LINE_MAX.
    """

    def __init__(
        self, out: IO[bytes] | None = None, err: IO[bytes] | None = None, labels: bool = True
    ) -> None:
        self.out = out or sys.stdout.buffer
        self.err = err or sys.stderr.buffer
        self.labels = labels  # -N: lines as the nodes wrote them
        self._partial: dict[tuple[str, int], bytes] = {}

    def feed(self, node: str, stream: int, data: bytes) -> None:
        w = self.err if stream == pb.Output.STDERR else self.out
        key = (node, stream)
        buf = self._partial.pop(key, b"") + data
        prefix = node.encode() + b": " if self.labels else b""
        lines = buf.split(b"\n")
        tail = lines.pop()
        if lines:
            w.write(b"".join(prefix + line + b"\n" for line in lines))
        while len(tail) > LINE_MAX:
            w.write(prefix + tail[:LINE_MAX] + b"\n")
            tail = tail[LINE_MAX:]
        if tail:
            self._partial[key] = tail

    def flush_node(self, node: str) -> None:
        for stream in (pb.Output.STDOUT, pb.Output.STDERR):
            tail = self._partial.pop((node, stream), b"")
            if tail:
                w = self.err if stream == pb.Output.STDERR else self.out
                w.write((node.encode() + b": " if self.labels else b"") + tail + b"\n")

    def flush(self) -> None:
        for node, _ in list(self._partial):
            self.flush_node(node)
        self.out.flush()
        self.err.flush()
