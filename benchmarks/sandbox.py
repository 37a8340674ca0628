"""The sandbox's cost (issue 12, Performance), side by side in one run.

    .venv/bin/python benchmarks/sandbox.py [--quick]

1. `shoal run -w node[1-64] --json -- true` on two local clusters of 64
   agent processes that are up at the same time: one as agents run (every
   command in a cgroup of its own), one started with SHOAL_SANDBOX=off (the
   agent's --no-sandbox: process-group kill only). The two are interleaved
   round by round, median of 10. Reported: the client's wall time, the time
   on each node from the task's start to its result (so the sandbox's making,
   joining, emptying and release, and nothing of the network), and the
   agents' CPU per node.
2. A CPU-bound command of about 5 s (a Python loop, calibrated first) in a
   `--cpus N` sandbox through shoal, against the same command under
   `taskset -c N`, N the same CPU; interleaved (which goes first
   alternates), median of 10. Reported: the wall time on the node (sandbox)
   and around the process (taskset), target within 1 %; and the CPU time of
   the same runs, which other load on a shared machine disturbs less.

Run as root on cgroup v1 here (as the tests). Writes
benchmarks/results/sandbox.json and .md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run_fanout import SHOAL, proc_cpu, shoal_cluster

OUT = Path(__file__).resolve().parent / "results"
N = 64
TARGET_CPU_BOUND_PCT = 1.0
LOOP = "python3 -c 'i = 0\nwhile i < {n}: i += 1'"


def pids(cluster: Any) -> list[int]:
    return [p.pid for p in cluster.state.procs]


def run_json(argv: list[str], env: dict[str, str]) -> tuple[float, dict[str, Any]]:
    t0 = time.perf_counter()
    r = subprocess.run(argv, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    doc = json.loads(r.stdout)
    bad = {n: d["state"] for n, d in doc["nodes"].items() if d["state"] != "PASS"}
    if bad:
        raise SystemExit(f"{' '.join(argv[:4])}...: not every node passed: {bad}")
    return wall, doc["nodes"]


def med_ms(xs: list[float]) -> float:
    return round(1000 * statistics.median(xs), 3)


def fanout_true(rounds: int) -> dict[str, Any]:
    argv = [SHOAL, "run", "-w", f"node[1-{N}]", "--json", "--", "true"]
    print(f"1. shoal run -w node[1-{N}] -- true, with and without a sandbox")
    with contextlib.ExitStack() as stack:
        boxed, env_boxed = stack.enter_context(shoal_cluster(N, 1))
        os.environ["SHOAL_SANDBOX"] = "off"  # the second cluster's agents inherit it
        try:
            bare, env_bare = stack.enter_context(shoal_cluster(N, 1))
        finally:
            del os.environ["SHOAL_SANDBOX"]
        env_bare.pop("SHOAL_SANDBOX", None)
        runs = {"sandbox": (boxed, env_boxed), "no_sandbox": (bare, env_bare)}
        for _, env in runs.values():
            run_json(argv, env)  # warm-up: connections, page cache
        wall: dict[str, list[float]] = {k: [] for k in runs}
        node: dict[str, list[float]] = {k: [] for k in runs}
        cpu = dict.fromkeys(runs, 0.0)
        peak = dict.fromkeys(runs, 0)
        for i in range(rounds):
            for k, (c, env) in runs.items():
                time.sleep(0.5)
                c0 = proc_cpu(pids(c))
                w, nodes = run_json(argv, env)
                cpu[k] += proc_cpu(pids(c)) - c0
                wall[k].append(w)
                node[k] += [(d["end"] - d["start"]) for d in nodes.values()]
                peak[k] = max(peak[k], *(d["peak_memory"] for d in nodes.values()))
            print(f"  round {i + 1}/{rounds}: " + ", ".join(
                f"{k} {1000 * wall[k][-1]:.0f} ms" for k in runs))  # fmt: skip
    # a cluster that measured peak memory ran in cgroups: the two must differ
    assert peak["sandbox"] > 0 and peak["no_sandbox"] == 0, peak
    res: dict[str, Any] = {"nodes": N, "rounds": rounds}
    for k in wall:
        res[k] = {
            "wall_ms_median": med_ms(wall[k]),
            "wall_ms_all": [round(1000 * w, 1) for w in wall[k]],
            "node_ms_median": med_ms(node[k]),
            "node_ms_p90": round(1000 * statistics.quantiles(node[k], n=10)[-1], 3),
            "agent_cpu_ms_per_node": round(1000 * cpu[k] / (rounds * N), 3),
        }
    s, b = res["sandbox"], res["no_sandbox"]
    res["added_node_ms"] = round(s["node_ms_median"] - b["node_ms_median"], 3)
    res["added_wall_ms"] = round(s["wall_ms_median"] - b["wall_ms_median"], 1)
    res["added_agent_cpu_ms_per_node"] = round(
        s["agent_cpu_ms_per_node"] - b["agent_cpu_ms_per_node"], 3
    )
    return res


def loop_seconds(n: int, cpu: int) -> tuple[float, float]:
    """(wall, CPU) seconds of the loop under taskset; CPU from the reaped children."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(["taskset", "-c", str(cpu), "sh", "-c", LOOP.format(n=n)], check=True)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def cpu_bound(rounds: int, seconds: float) -> dict[str, Any]:
    cpu = max(os.sched_getaffinity(0))
    n = 10_000_000
    n = int(n * seconds / loop_seconds(n, cpu)[1])
    cmd = LOOP.format(n=n)
    print(f"2. a {seconds:g} s CPU-bound loop ({n} iterations) on CPU {cpu}: --cpus vs taskset")
    boxed: list[float] = []
    pinned: list[float] = []
    boxed_cpu: list[float] = []
    pinned_cpu: list[float] = []
    client: list[float] = []
    with shoal_cluster(1, 1) as (_, env):
        argv = [SHOAL, "run", "-w", "node1", "--cpus", str(cpu), "--json", "--", cmd]
        run_json(argv, env)

        def sandboxed() -> None:
            w, nodes = run_json(argv, env)
            d = nodes["node1"]
            boxed.append(d["end"] - d["start"])
            boxed_cpu.append(d["cpu_s"])
            client.append(w)

        def pinned_run() -> None:
            w, c = loop_seconds(n, cpu)
            pinned.append(w)
            pinned_cpu.append(c)

        for i in range(rounds):  # which goes first alternates: no order favours one
            for f in (sandboxed, pinned_run) if i % 2 == 0 else (pinned_run, sandboxed):
                f()
            print(
                f"  round {i + 1}/{rounds}: --cpus {boxed[-1]:.3f} s (CPU {boxed_cpu[-1]:.3f}),"
                f" taskset {pinned[-1]:.3f} s (CPU {pinned_cpu[-1]:.3f})"
            )
    b, p = statistics.median(boxed), statistics.median(pinned)
    bc, pc = statistics.median(boxed_cpu), statistics.median(pinned_cpu)
    diff = 100 * (b / p - 1)
    return {
        "cpu_s_median": {"sandbox": round(bc, 4), "taskset": round(pc, 4)},
        "cpu_difference_pct": round(100 * (bc / pc - 1), 2),
        "cpu": cpu,
        "iterations": n,
        "rounds": rounds,
        "sandbox_s_median": round(b, 4),
        "sandbox_s_all": [round(x, 4) for x in boxed],
        "sandbox_client_s_median": round(statistics.median(client), 4),
        "taskset_s_median": round(p, 4),
        "taskset_s_all": [round(x, 4) for x in pinned],
        "spread_pct": {
            "sandbox": round(100 * (max(boxed) - min(boxed)) / b, 2),
            "taskset": round(100 * (max(pinned) - min(pinned)) / p, 2),
        },
        "difference_pct": round(diff, 2),
        "target_pct": TARGET_CPU_BOUND_PCT,
        "target_met": abs(diff) <= TARGET_CPU_BOUND_PCT,
    }


def row(*cells: object) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def markdown(res: dict[str, Any]) -> str:
    f, c = res["fanout_true"], res["cpu_bound"]
    s, b = f["sandbox"], f["no_sandbox"]
    met = "met" if c["target_met"] else "**missed**"
    keys = ("wall_ms_median", "node_ms_median", "node_ms_p90", "agent_cpu_ms_per_node")
    cpu = c["cpu"]
    return "\n".join(
        [
            "# Sandbox cost (benchmarks/sandbox.py)",
            "",
            f"{res['date']}, {res['machine']}; load average at the start {res['loadavg']}.",
            "",
            f"## `shoal run -w node[1-{f['nodes']}] -- true`, with and without a sandbox",
            "",
            f"Two clusters of {f['nodes']} agent processes up at once, interleaved, median of"
            f" {f['rounds']}. On the node: from the task's start to its result on each node.",
            "",
            row("", "client wall ms", "on the node ms (median)", "on the node ms (p90)",
                "agent CPU ms/node"),
            "|---|---:|---:|---:|---:|",
            row("sandbox (cgroup v1)", *(s[k] for k in keys)),
            row("no sandbox (`--no-sandbox`)", *(b[k] for k in keys)),
            row("added by the sandbox", f["added_wall_ms"], f["added_node_ms"], "",
                f["added_agent_cpu_ms_per_node"]),
            "",
            f"## A CPU-bound command of about 5 s: `--cpus {cpu}` vs `taskset -c {cpu}`",
            "",
            f"{c['iterations']} iterations of a Python loop, interleaved, median of"
            f" {c['rounds']}.",
            "",
            row("", "wall s (median)", "spread (max-min)/median"),
            "|---|---:|---:|",
            row(f"shoal sandbox, `--cpus {cpu}` (on the node)", c["sandbox_s_median"],
                f"{c['spread_pct']['sandbox']} %"),
            row(f"`taskset -c {cpu}` (around the process)", c["taskset_s_median"],
                f"{c['spread_pct']['taskset']} %"),
            "",
            f"Difference: {c['difference_pct']} % (target: within {c['target_pct']} %: {met}).",
            "",
            "CPU time of the same runs (the sandbox's from its cgroup, taskset's from the"
            f" reaped children): --cpus {c['cpu_s_median']['sandbox']} s, taskset"
            f" {c['cpu_s_median']['taskset']} s, difference {c['cpu_difference_pct']} %.",
            "",
            f"Load average at the end: {res['loadavg_end']} (the machine is shared).",
            "",
        ]
    )  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="3 rounds, a 1 s loop (a smoke run)")
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root: sandboxes are cgroups", file=sys.stderr)
        return 2
    rounds, seconds = (3, 1.0) if a.quick else (10, 5.0)
    res: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} CPUs, {platform.release()}, Python "
        f"{platform.python_version()}",
        "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "quick": a.quick,
    }
    res["fanout_true"] = fanout_true(rounds)
    res["cpu_bound"] = cpu_bound(rounds, seconds)
    res["loadavg_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    OUT.mkdir(exist_ok=True)
    name = "sandbox-quick" if a.quick else "sandbox"
    (OUT / f"{name}.json").write_text(json.dumps(res, indent=2) + "\n")
    (OUT / f"{name}.md").write_text(markdown(res))
    print(markdown(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
