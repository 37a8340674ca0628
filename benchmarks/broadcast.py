"""Broadcast benchmark (issue 3): shoal copy against the physical limit and
against the practice it replaces, in one run.

Part "netns": N hosts as network namespaces on a bridge, every host link
shaped to the same rate R in both directions (tbf), one agent per host, a
file of SIZE copied to /tmp on every host. Reported: wall time, per-node
rate as a share of R, time against the limit size/R, agents' peak RSS.

Part "loopback": 16 local agents (one process each), the same file into each
node's own /tmp: shoal copy (each data plane, see docs/copy.md) vs clush
--copy over a private sshd vs a loop of scp (see benchmarks/sshd.py) vs 16
plain cp at once, with broadcast efficiency (time to 1 node / time to N nodes).

Part "cpu": CPU seconds per GiB of the client, each relay and the leaf of a
4-node chain, per data plane, beside the receive-and-write floor measured in
the same run (benchmarks/broadcast_cpu.py).

    .venv/bin/python benchmarks/broadcast.py [--size-mib 256] [--rate 100mbit]
        [--fast-rate 1gbit] [--parts netns,loopback,cpu]

Needs root (namespaces, tc). Writes benchmarks/results/broadcast.{json,md}.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bulk_floors import settle  # noqa: E402
from plain_chain import run_chain  # noqa: E402

from shoal.core import tls  # noqa: E402
from shoal.deploy import AgentNode, NetnsHosts, agent_argv, agent_env, ready_port  # noqa: E402

WORK = ROOT / "benchmarks" / "work" / "broadcast"
RESULTS = ROOT / "benchmarks" / "results"
PY = sys.executable
SHOAL = [PY, "-m", "shoal.cli.main"]
FLOOR = "floor: plain chain"  # no tool: benchmarks/plain_chain.py


def rate_bytes(rate: str) -> float:
    units = {"kbit": 1e3, "mbit": 1e6, "gbit": 1e9}
    for u, m in units.items():
        if rate.endswith(u):
            return float(rate[: -len(u)]) * m / 8
    raise ValueError(rate)


class PeakRSS:
    """Samples the summed RSS of some processes (and their children) until stopped."""

    def __init__(self, pids: list[int]) -> None:
        self.procs = [psutil.Process(p) for p in pids]
        self.peak_each = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for p in self.procs:
                with contextlib.suppress(psutil.Error):
                    rss = p.memory_info().rss
                    for c in p.children(recursive=True):
                        with contextlib.suppress(psutil.Error):
                            rss = max(rss, c.memory_info().rss)
                    self.peak_each = max(self.peak_each, rss)
            time.sleep(0.1)

    def __enter__(self) -> PeakRSS:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()


@contextlib.contextmanager
def netns_agents(n: int, rate: str, home: Path) -> Iterator[tuple[NetnsHosts, list[int]]]:
    """N netns hosts with one agent each; inventory and certificates in home."""
    tls_dir = home / "tls"
    if not (tls_dir / "ca.crt").exists():
        tls.init_ca(tls_dir)
        tls.issue(tls_dir, tls.CLIENT_NAME, role=tls.OPERATOR)
    hosts = NetnsHosts.create(n, rate=rate)
    procs: list[subprocess.Popen[str]] = []
    try:
        lines = ["[nodes]"]
        for i in range(n):
            name = f"h{i + 1}"
            if not (tls_dir / f"{name}.crt").exists():
                tls.issue(tls_dir, name)
            node = AgentNode(name, hosts.address(i), 1995, tls_dir)
            p = subprocess.Popen(
                hosts.wrap(i, agent_argv([node])),
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                cwd=ROOT,
                env=agent_env(),
            )
            procs.append(p)
            lines.append(f'{name} = "{node.listen}"')
        for p in procs:
            assert p.stdout is not None
            line = p.stdout.readline()
            if ready_port(line) is None:
                raise RuntimeError(f"agent did not start: {line!r}")
        (home / "inventory.toml").write_text("\n".join(lines) + "\n")
        # the agent's own pid is the exec'd child of `ip netns exec`: the Popen pid itself
        yield hosts, [p.pid for p in procs]
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=10)
        hosts.destroy()


def run_copy(
    home: Path, nodes: str, src: Path, width: int, chunk: str = "512K", bulk: str = "aead"
) -> dict[str, object]:
    env = {**os.environ, "SHOAL_HOME": str(home), "PYTHONPATH": str(ROOT / "src")}
    t0 = time.perf_counter()
    r = subprocess.run(
        [
            *SHOAL,
            "copy",
            "-w",
            nodes,
            "-W",
            str(width),
            "--chunk-size",
            chunk,
            "--bulk",
            bulk,
            "--json",
            str(src),
            "/tmp/",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    wall = time.perf_counter() - t0
    doc = json.loads(r.stdout) if r.stdout.strip().startswith("{") else {}
    ends = [v["end"] for v in doc.get("nodes", {}).values() if v.get("state") == "PASS"]
    starts = [v["start"] for v in doc.get("nodes", {}).values() if v.get("state") == "PASS"]
    return {
        "wall_s": wall,
        "rc": r.returncode,
        "passed": len(ends),
        "span_s": max(ends) - min(starts) if ends else 0.0,
        "stderr": r.stderr.strip()[-300:],
    }


def part_netns(
    size: int,
    rate: str,
    counts: list[int],
    widths: list[int],
    src: Path,
    modes: tuple[str, ...] = ("aead",),
) -> list[dict[str, object]]:
    rows = []
    limit = size / rate_bytes(rate)
    for n in counts:
        home = WORK / f"netns-{n}"
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
        with netns_agents(n, rate, home) as (hosts, pids):
            runs = [(w, b) for w in widths for b in modes]
            if 1 in widths:
                runs.append((1, FLOOR))
            for w, bulk in runs:
                settle()  # the same state of memory for every copy (see settle())
                with PeakRSS(pids) as rss:
                    if bulk == FLOOR:
                        res = run_chain(
                            src,
                            [f"{hosts.address(i)}:7000" for i in range(n)],
                            [f"/tmp/{src.name}"] * n,
                            hosts.wrap,
                        )
                    else:
                        res = run_copy(home, f"h[1-{n}]", src, w, bulk=bulk)
                wall = float(res["wall_s"])  # type: ignore[arg-type]
                rows.append(
                    {
                        "part": "netns",
                        "nodes": n,
                        "width": w,
                        "rate": rate,
                        "bulk": bulk,
                        "size_mib": size >> 20,
                        "wall_s": round(wall, 2),
                        "limit_s": round(limit, 2),
                        "share_of_rate": round(limit / wall, 3),
                        "share_of_span": round(limit / float(res["span_s"]), 3),  # type: ignore[arg-type]
                        # without the client's start (imports, TLS, dialling)
                        "span_s": res["span_s"],
                        "passed": res["passed"],
                        "agent_peak_rss_mib": round(rss.peak_each / 2**20, 1),
                        "rc": res["rc"],
                        "stderr": res["stderr"],
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
    return rows


def timed(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, int, str]:
    t0 = time.perf_counter()
    r = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT)
    return time.perf_counter() - t0, r.returncode, (r.stderr or r.stdout).strip()[-300:]


def part_loopback(
    size: int, src: Path, n: int, modes: tuple[str, ...] = ("aead", "mac", "grpc")
) -> list[dict[str, object]]:
    """shoal copy vs clush --copy vs a loop of scp, n local hosts, each its own /tmp."""
    from sshd import sshd_hosts

    from shoal.deploy import LocalCluster

    rows: list[dict[str, object]] = []
    mib = size >> 20

    def row(tool: str, one: float, full: float, rc: int, err: str, **extra: object) -> None:
        rows.append(
            {
                "part": "loopback",
                "tool": tool,
                "nodes": n,
                "size_mib": mib,
                "one_s": round(one, 2),
                "wall_s": round(full, 2),
                "efficiency": round(one / full, 3),
                "rc": rc,
                "stderr": err,
                **extra,
            }
        )
        print(json.dumps(rows[-1]), flush=True)

    home = WORK / "loopback"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    cluster = LocalCluster(home)
    cluster.start(n)
    try:
        pids = [p.pid for p in cluster.state.procs]
        for bulk in modes:
            one = run_copy(home, "node1", src, 2, bulk=bulk)
            settle()  # every tool starts in the same state of memory
            with PeakRSS(pids) as rss:
                full = run_copy(home, f"node[1-{n}]", src, 2, bulk=bulk)
            row(
                "shoal copy" if bulk == "aead" else f"shoal copy --bulk {bulk}",
                float(one["wall_s"]),  # type: ignore[arg-type]
                float(full["wall_s"]),  # type: ignore[arg-type]
                int(full["rc"]),  # type: ignore[call-overload]
                str(full["stderr"]),
                agent_peak_rss_mib=round(rss.peak_each / 2**20, 1),
            )
            for nm in cluster.names:  # free its copies before the next tool writes its own
                with contextlib.suppress(OSError):
                    (home / "cluster" / nm / "tmp" / src.name).unlink()
    finally:
        cluster.down()
    # The machine's floor: n local copies written at once, no network, no
    # tool. Every tool above must at least write these bytes into page cache.
    floor_dir = WORK / "floor"
    shutil.rmtree(floor_dir, ignore_errors=True)
    floor_dir.mkdir(parents=True)
    cps = " ".join(f"cp {src} {floor_dir}/{i} &" for i in range(n))
    floor_one, _, _ = timed(["cp", str(src), str(floor_dir / "one")])
    (floor_dir / "one").unlink()
    settle()
    floor_s, rc, err = timed(["sh", "-c", f"{cps} wait"])
    shutil.rmtree(floor_dir, ignore_errors=True)
    row(f"floor: {n} local cp at once (no network)", floor_one, floor_s, rc, err)
    # The floor of any tool that moves the bytes over TCP: a chain of n plain
    # processes, each receiving, writing and sending on (no tool, no crypto).
    outs = [str(floor_dir / f"{i}") for i in range(n)]
    floor_dir.mkdir(parents=True)
    ports = [f"127.0.0.1:{7300 + i}" for i in range(n)]
    settle()
    one = run_chain(src, ports[:1], outs[:1])
    settle()
    chain = run_chain(src, ports, outs)
    shutil.rmtree(floor_dir, ignore_errors=True)
    row(
        f"floor: a chain of {n} plain processes over TCP",
        float(one["wall_s"]),  # type: ignore[arg-type]
        float(chain["wall_s"]),  # type: ignore[arg-type]
        int(chain["rc"]),  # type: ignore[call-overload]
        str(chain["stderr"]),
    )
    clush = str(Path(PY).with_name("clush"))
    with sshd_hosts(n) as d:
        opts = ["-o", f"-F {d}/ssh_config"]
        one_s, _, _ = timed([clush, *opts, "-w", "node1", "--copy", str(src), "--dest", "/tmp/"])
        settle()
        full_s, rc, err = timed(
            [clush, *opts, "-w", f"node[1-{n}]", "--copy", str(src), "--dest", "/tmp/"]
        )
        row("clush --copy (scp per node, fanout 64)", one_s, full_s, rc, err)
        loop = "; ".join(
            f"scp -q -F {d}/ssh_config {src} node{i}:/tmp/ || exit 1" for i in range(1, n + 1)
        )
        scp_one, _, _ = timed(["scp", "-q", "-F", f"{d}/ssh_config", str(src), "node1:/tmp/"])
        settle()
        loop_s, rc, err = timed(["sh", "-c", loop])
        row("a loop of scp", scp_one, loop_s, rc, err)
    return rows


def write_results(rows: list[dict[str, object]], meta: dict[str, object]) -> None:
    from broadcast_cpu import markdown as cpu_markdown

    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "broadcast.json").write_text(
        json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n"
    )
    md = [f"# Broadcast benchmark\n\n{meta['note']}\n"]
    net = [r for r in rows if r["part"] == "netns"]
    if net:
        md.append("\n## netns hosts, every link shaped to R both ways, into /tmp\n")
        md.append("share of R = (size/R) / wall time of the whole `shoal copy` command;"
                  " copy span: first node's start to last node's end (the client's own start"
                  " left out). The floor: the same file down a chain of plain Python"
                  " processes on the same links, no tool, no encryption, no hash"
                  " (benchmarks/plain_chain.py).\n")  # fmt: skip
        md.append(
            "| R | MiB | nodes | width | data plane | wall (s) | limit size/R (s) | share of R "
            "| copy span (s) | share of R over the span | passed | agent peak RSS (MiB) |"
        )
        md.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in net:
            md.append(
                f"| {r['rate']} | {r['size_mib']} | {r['nodes']} | {r['width']} | {r['bulk']} | "
                f"{r['wall_s']} | {r['limit_s']} | {r['share_of_rate']:.0%} | {r['span_s']:.2f} | "
                f"{r['share_of_span']:.0%} | {r['passed']}/{r['nodes']} | "
                f"{r['agent_peak_rss_mib']} |"
            )
    loop = [r for r in rows if r["part"] == "loopback"]
    if loop:
        md.append(
            f"\n## loopback, {loop[0]['nodes']} local nodes, "
            f"{loop[0]['size_mib']} MiB into each node's /tmp\n"
        )
        md.append("| tool | wall (s) | 1 node (s) | broadcast efficiency | vs shoal |")
        md.append("|---|---|---|---|---|")
        base = next((r["wall_s"] for r in loop if r["tool"] == "shoal copy"), None)
        for r in loop:
            ratio = (
                f"{float(r['wall_s']) / float(base):.2f}x shoal's time"  # type: ignore[arg-type]
                if base and r["tool"] != "shoal copy"
                else "1.0"
            )
            md.append(
                f"| {r['tool']} | {r['wall_s']} | {r['one_s']} | {r['efficiency']:.2f} | {ratio} |"
            )
    md += cpu_markdown([r for r in rows if r["part"] == "cpu"])
    md += targets(rows)
    (RESULTS / "broadcast.md").write_text("\n".join(md) + "\n")


def _met(ok: bool) -> str:
    return "met" if ok else "**missed**"


def targets(rows: list[dict[str, object]]) -> list[str]:
    """Issue 17's targets against this run, met or missed."""
    out = ["\n## Targets (issue 17)\n", "| target | measured | |", "|---|---|---|"]
    net = [r for r in rows if r["part"] == "netns"]
    for rate in dict.fromkeys(str(r["rate"]) for r in net):
        for w in sorted({int(r["width"]) for r in net if r["rate"] == rate}):  # type: ignore[call-overload]
            at = [r for r in net if r["width"] == w and r["rate"] == rate]
            rs = [r for r in at if r["bulk"] != FLOOR]
            worst = min(float(r["share_of_rate"]) for r in rs)  # type: ignore[arg-type]
            span = min(float(r["share_of_span"]) for r in rs)  # type: ignore[arg-type]
            ns = ", ".join(str(r["nodes"]) for r in rs)
            floor = [float(r["share_of_rate"]) for r in at if r["bulk"] == FLOOR]  # type: ignore[arg-type]
            beside = f"; the plain chain, worst {min(floor):.0%}" if floor else ""
            out.append(
                f"| R = {rate}, N = {ns}, -W {w}: every node >= 85% of R | worst {worst:.0%}"
                f" (over the copy span {span:.0%}){beside} | {_met(worst >= 0.85)} |"
            )
    loop = {str(r["tool"]): r for r in rows if r["part"] == "loopback"}
    base = loop.get("shoal copy")
    cl = next((r for t, r in loop.items() if t.startswith("clush")), None)
    cp = next((r for t, r in loop.items() if "local cp" in t), None)
    chain = next((r for t, r in loop.items() if "plain processes" in t), None)
    if base and cl:
        ratio = float(cl["wall_s"]) / float(base["wall_s"])  # type: ignore[arg-type]
        out.append(
            f"| loopback, 16 nodes: >= 2.5x faster than clush --copy | {ratio:.2f}x "
            f"| {_met(ratio >= 2.5)} |"
        )
    if base and cp:
        ratio = float(base["wall_s"]) / float(cp["wall_s"])  # type: ignore[arg-type]
        out.append(
            f"| loopback, 16 nodes: within 1.5x of 16 parallel cp | {ratio:.2f}x cp's time "
            f"| {_met(ratio <= 1.5)} |"
        )
    if base and cp and chain:
        floor = float(chain["wall_s"]) / float(cp["wall_s"])  # type: ignore[arg-type]
        mine = float(base["wall_s"]) / float(chain["wall_s"])  # type: ignore[arg-type]
        out.append(
            f"| (beside it) a chain of 16 plain processes over TCP | {floor:.2f}x cp's time; "
            f"shoal {mine:.2f}x the chain's | |"
        )
    for r in (r for r in rows if r["part"] == "cpu"):
        relay, leaf = float(r["relay_vs_floor"]), float(r["leaf_vs_floor"])  # type: ignore[arg-type]
        out.append(
            f"| --bulk {r['mode']}: relay CPU/GiB <= 2x the receive-and-write floor "
            f"| {relay:.2f}x | {_met(relay <= 2)} |"
        )
        out.append(
            f"| --bulk {r['mode']}: leaf CPU/GiB <= 1.5x the floor | {leaf:.2f}x "
            f"| {_met(leaf <= 1.5)} |"
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--rate", default="100mbit")
    ap.add_argument("--fast-rate", default="", help="also N=4, -W 1 at this rate")
    ap.add_argument("--fast-size-mib", type=int, default=1024)
    ap.add_argument("--counts", default="4,8,16")
    ap.add_argument("--widths", default="1,2")
    ap.add_argument("--parts", default="netns,loopback,cpu")
    ap.add_argument("--loopback-nodes", type=int, default=16)
    ap.add_argument("--cpu-size-mib", type=int, default=1024)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("benchmarks/broadcast.py needs root (network namespaces, tc)")
    WORK.mkdir(parents=True, exist_ok=True)
    size = args.size_mib << 20
    src = payload(args.size_mib)
    rows: list[dict[str, object]] = []
    parts = args.parts.split(",")
    if "netns" in parts:
        rows += part_netns(
            size,
            args.rate,
            [int(x) for x in args.counts.split(",")],
            [int(x) for x in args.widths.split(",")],
            src,
        )
        if args.fast_rate:  # a larger file, so that the client's start is not the rate
            fast = args.fast_size_mib << 20
            rows += part_netns(fast, args.fast_rate, [4], [1], payload(args.fast_size_mib))
    if "loopback" in parts:
        rows += part_loopback(size, src, args.loopback_nodes)
    if "cpu" in parts:
        from broadcast_cpu import part_cpu

        big = args.cpu_size_mib << 20
        rows += part_cpu(big, payload(args.cpu_size_mib), ["grpc", "aead", "mac"], repeat=3)
    meta = {
        "note": (
            f"Measured {time.strftime('%Y-%m-%d %H:%M')} on {os.cpu_count()} cores, "
            f"{psutil.virtual_memory().total / 2**30:.0f} GiB, load average "
            f"{os.getloadavg()[0]:.1f} at the end; one run of `benchmarks/broadcast.py "
            f"{' '.join(sys.argv[1:])}`. share of R = (size/R) / wall time. Data planes: "
            "aead (the default), mac (plain bytes, tagged), grpc (the chunks in the Copy "
            "calls, as before issue 17); see docs/copy.md."
        ),
        "python": sys.version.split()[0],
    }
    write_results(rows, meta)
    print((RESULTS / "broadcast.md").read_text())


def payload(mib: int) -> Path:
    src = WORK / f"payload-{mib}m.bin"
    if not src.exists() or src.stat().st_size != mib << 20:
        with src.open("wb") as f:
            for _ in range(mib):
                f.write(os.urandom(1 << 20))
    return src


if __name__ == "__main__":
    main()
