"""CPU seconds per GiB of `shoal copy` (issue 17), side by side with the floors
of this machine measured in the same run (benchmarks/bulk_floors.py).

A local cluster of N agents (one process each, each its own /tmp as root), a
chain (-W 1): node1..node(N-1) are relays, nodeN is the leaf. One copy of a
SIZE file per data plane (grpc: the chunks in the Copy calls, as before
issue 17; aead, the default; mac). CPU = user + system of each agent process
(and its children) over the copy; the client's from its rusage.

    .venv/bin/python benchmarks/broadcast_cpu.py [--size-mib 1024] [--modes grpc,aead,mac]

Part "cpu" of benchmarks/broadcast.py.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bulk_floors import settle, transfer, warm  # noqa: E402
from plain_chain import run_chain  # noqa: E402

WORK = ROOT / "benchmarks" / "work" / "broadcast"
PY = sys.executable
GIB = 1 << 30
CHAIN_PORT = 7100


def _cpu(p: psutil.Process) -> float:
    total = 0.0
    for q in [p, *p.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            t = q.cpu_times()
            total += t.user + t.system
    return total


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def floors(
    src: Path, modes: tuple[str, ...] = ("plain", "tls"), fresh: bool = False
) -> dict[str, float]:
    """The receive-and-write floors, each after settle(); fresh: the plain
    one also on pages just freed (see bulk_floors.settle), for context."""
    out: dict[str, float] = {}
    scale = GIB / src.stat().st_size
    with tempfile.TemporaryDirectory(dir="/tmp") as d:
        for mode in modes:
            settle()
            s, r, _ = transfer(src, mode, Path(d))
            out[f"{mode} sender"] = round(s * scale, 3)
            out[f"{mode} receiver (incl. write)"] = round(r * scale, 3)
        if fresh:
            warm(2 * src.stat().st_size)
            _, r, _ = transfer(src, "plain", Path(d))
            out["plain receiver (incl. write) on pages just freed"] = round(r * scale, 3)
    return out


def part_cpu(
    size: int, src: Path, modes: list[str], n: int = 4, chunk: str = "512K", repeat: int = 1
) -> list[dict[str, object]]:
    """One row per data plane: the median of `repeat` copies, the planes taken
    in turn (what a page-cache write costs on this VM varies from one copy to
    the next, see settle(); each ratio is against the floor measured just before)."""
    runs = _part_cpu(size, src, modes * repeat, n, chunk)
    return [_median_row([r for r in runs if r["mode"] == m]) for m in dict.fromkeys(modes)]


def _median_row(runs: list[dict[str, Any]]) -> dict[str, object]:
    row = dict(runs[0])
    for k in ("wall_s", "client_s_per_gib", "leaf_s_per_gib", "floor_receive_write_s_per_gib",
              "floor_relay_s_per_gib", "relay_vs_floor", "leaf_vs_floor"):  # fmt: skip
        row[k] = round(statistics.median(float(r[k]) for r in runs), 3)
    row["relay_s_per_gib"] = [
        round(statistics.median(xs), 3)
        for xs in zip(*(r["relay_s_per_gib"] for r in runs), strict=True)
    ]
    row["runs"] = len(runs)
    row["relay_vs_floor_each"] = [r["relay_vs_floor"] for r in runs]
    row["leaf_vs_floor_each"] = [r["leaf_vs_floor"] for r in runs]
    row["rc"] = max(int(r["rc"]) for r in runs)
    return row


def _part_cpu(
    size: int, src: Path, modes: list[str], n: int = 4, chunk: str = "512K"
) -> list[dict[str, object]]:
    from shoal.deploy import LocalCluster

    rows: list[dict[str, object]] = []
    home = WORK / "cpu"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    cluster = LocalCluster(home)
    cluster.start(n)
    env = {**os.environ, "SHOAL_HOME": str(home), "PYTHONPATH": str(ROOT / "src")}
    scale = GIB / size
    try:
        procs = {p.names[0]: psutil.Process(p.pid) for p in cluster.state.procs}
        names = [f"node{i}" for i in range(1, n + 1)]
        for i, mode in enumerate(modes):
            floor: dict[str, object] = (
                dict(floors(src, ("plain", "tls"), fresh=True)) if i == 0 else {}
            )
            settle()
            chain = run_chain(
                src,
                [f"127.0.0.1:{CHAIN_PORT + k}" for k in range(n)],
                [str(home / "cluster" / nm / "tmp" / f"floor-{src.name}") for nm in names],
            )
            cf = chain["cpu_s_per_gib"]
            floor["plain chain relays"], floor["plain chain leaf"] = cf[:-1], cf[-1]  # type: ignore[index]
            settle()
            before = {nm: _cpu(procs[nm]) for nm in names}
            c0 = _children_cpu()
            t0 = time.perf_counter()
            r = subprocess.run(
                [PY, "-m", "shoal.cli.main", "copy", "-w", f"node[1-{n}]", "-W", "1",
                 "--bulk", mode, "--chunk-size", chunk, "--json", str(src), "/tmp/"],
                capture_output=True, text=True, env=env, cwd=ROOT,
            )  # fmt: skip
            wall = time.perf_counter() - t0
            client = _children_cpu() - c0
            cpu = {nm: (_cpu(procs[nm]) - before[nm]) * scale for nm in names}
            relays = [cpu[nm] for nm in names[:-1]]
            leaf = cpu[names[-1]]
            rows.append(
                {
                    "part": "cpu",
                    "mode": mode,
                    "chunk": chunk,
                    "nodes": n,
                    "size_mib": size >> 20,
                    "rc": r.returncode,
                    "wall_s": round(wall, 2),
                    "client_s_per_gib": round(client * scale, 3),
                    "relay_s_per_gib": [round(x, 3) for x in relays],
                    "leaf_s_per_gib": round(leaf, 3),
                    "floor_receive_write_s_per_gib": cf[-1],  # type: ignore[index]
                    "floor_relay_s_per_gib": max(cf[:-1]),  # type: ignore[index]
                    "relay_vs_floor": round(max(relays) / cf[-1], 2),  # type: ignore[index]
                    "leaf_vs_floor": round(leaf / cf[-1], 2),  # type: ignore[index]
                    "floors": floor,
                    "stderr": r.stderr.strip()[-300:],
                }
            )
            print(json.dumps(rows[-1]), flush=True)
            for nm in names:  # each node's /tmp is its own: free the page cache for the next
                with contextlib.suppress(OSError):
                    os.unlink(home / "cluster" / nm / "tmp" / src.name)
    finally:
        cluster.down()
    return rows


def markdown(rows: list[dict[str, object]]) -> list[str]:
    if not rows:
        return []
    f = rows[0]["floors"]
    md = [
        f"\n## CPU per GiB, {rows[0]['nodes']}-node chain (-W 1), {rows[0]['size_mib']} MiB,"
        " loopback\n",
        "The floor, measured just before each copy: the same file down a chain of the"
        " same number of plain Python processes on loopback, each writing its node's"
        " /tmp (benchmarks/plain_chain.py: 1 MiB reads, written in 64 KiB writes as the spool"
        " writes, sent on to the next; no encryption, no hash, no protocol): its leaf is"
        " the receive-and-write floor,"
        " written in the same state of memory as the copy's leaf (every node's file"
        " written at once). Every step, floor or copy, starts after the memory freed"
        " before it is the VM's again (bulk_floors.settle(): a page-cache write costs"
        " ~10x less on pages freed within the last half second, which no tool that"
        " takes a second to start can get). Two processes alone, before the first: "
        + ", ".join(f"{k} {v} s/GiB" for k, v in f.items())  # type: ignore[attr-defined]
        + ".\n",
        f"Each row: the median of {rows[0].get('runs', 1)} copies, the data planes taken in"
        " turn; the ratios of each copy in brackets.\n",
        "| data plane | wall (s) | client s/GiB | relays s/GiB | leaf s/GiB "
        "| floor: plain relay, leaf s/GiB | relay / floor | leaf / floor |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        relays = ", ".join(str(x) for x in r["relay_s_per_gib"])  # type: ignore[attr-defined]
        each_r = ", ".join(f"{x}" for x in r.get("relay_vs_floor_each", []))  # type: ignore[attr-defined]
        each_l = ", ".join(f"{x}" for x in r.get("leaf_vs_floor_each", []))  # type: ignore[attr-defined]
        md.append(
            f"| {r['mode']} | {r['wall_s']} | {r['client_s_per_gib']} | {relays} | "
            f"{r['leaf_s_per_gib']} | {r['floor_relay_s_per_gib']}, "
            f"{r['floor_receive_write_s_per_gib']} | "
            f"{r['relay_vs_floor']}x ({each_r}) | {r['leaf_vs_floor']}x ({each_l}) |"
        )
    return md


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--modes", default="grpc,aead,mac")
    ap.add_argument("--nodes", type=int, default=4)
    ap.add_argument("--chunk-size", default="512K")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    size = args.size_mib << 20
    src = WORK / f"payload-{args.size_mib}m.bin"
    if not src.exists() or src.stat().st_size != size:
        with src.open("wb") as fh:
            for _ in range(args.size_mib):
                fh.write(os.urandom(1 << 20))
    rows = part_cpu(size, src, args.modes.split(","), args.nodes, args.chunk_size, args.repeat)
    print("\n".join(markdown(rows)))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
