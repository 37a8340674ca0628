"""A burst workload replayed on a local cluster against the real scheduler
(issue 16, Performance: Real run), beside what the simulator predicts for the
same calls, and beside the mini-faas baseline scheduler (10-minute TTL, one
call per container) on the same cluster in the same run.

    .venv/bin/python benchmarks/faas_replay.py [--nodes 4] [--calls 3000] [--seconds 300]

Targets: mean scheduling latency <= 5 ms; the cold-start ratio within 10 % of
the simulator's for the same trace (one call per container, and calls per
container learned, which the simulator learns as the scheduler does).
Writes benchmarks/results/faas_replay.{json,md}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from run_fanout import shoal_cluster

from shoal.agent.spares import SPARES
from shoal.core.config import Settings
from shoal.faas import generate_burst, load_trace, make_policy
from shoal.faas.replay import predicted, replay_trace
from shoal.faas.scheduler import Options
from shoal.faas.state import MAX_CAP

OUT = Path(__file__).resolve().parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=4)
    ap.add_argument("--functions", type=int, default=10)
    ap.add_argument("--calls", type=int, default=3000)
    ap.add_argument("--seconds", type=float, default=300.0)
    ap.add_argument("--node-memory", type=int, default=3072, help="MiB")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        generate_burst(
            Path(d), functions=a.functions, calls=a.calls, seconds=a.seconds, seed=a.seed
        )
        trace = load_trace(Path(d))
    rows: dict[str, Any] = {}
    mem = a.node_memory << 20
    runs = [
        ("shoal", "shoal", False),
        ("shoal+concurrency", "shoal", True),
        ("baseline", "ttl-10", False),
    ]
    with shoal_cluster(a.nodes, 1) as (_, env):
        os.environ["SHOAL_HOME"] = env["SHOAL_HOME"]
        s = Settings.load()
        for label, pol, learn in runs:
            o = Options(nodes=a.nodes, max_nodes=a.nodes, min_nodes=a.nodes, learn=learn)
            print(f"  replaying {len(trace)} calls: {label}", flush=True)
            got = asyncio.run(
                replay_trace(
                    trace, make_policy(pol), "@all", settings=s, node_memory=mem, options=o
                )
            )
            real = got.to_json()
            # the replay's starts in turn, and the agents' spares modelled instead
            sim, spared = (
                predicted(
                    trace,
                    make_policy(pol),
                    got,
                    nodes=a.nodes,
                    node_memory=mem,
                    max_calls=MAX_CAP if learn else 1,
                    policy_cold_start=o.cold_start_s,
                    spares=spares,
                )
                for spares in (0, SPARES)
            )
            rows[label] = {
                "policy": pol, "learn": learn, "real": real, "simulated": sim,
                "simulated_spares": spared,
            }  # fmt: skip
            cold = (
                f"cold {real['cold_ratio']:.4f} (sim {sim['cold_ratio']:.4f}, "
                f"with spares modelled {spared['cold_ratio']:.4f})"
            )
            print(f"    {cold}, mean SL {real['mean_sl_ms']:.2f} ms, errors {real['errors']}")

    def gap_of(label: str, model: str = "simulated") -> float:
        r, p = rows[label]["real"], rows[label][model]
        return abs(r["cold_ratio"] - p["cold_ratio"]) / p["cold_ratio"] if p["cold_ratio"] else 0.0

    gap, gap_c = gap_of("shoal"), gap_of("shoal+concurrency")
    modelled = {k: gap_of(k, "simulated_spares") for k in rows}
    best = min(x["real"]["mean_sl_ms"] for x in rows.values())
    out = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "trace": {
            "functions": a.functions,
            "calls": len(trace),
            "seconds": a.seconds,
            "seed": a.seed,
        },
        "nodes": a.nodes,
        "node_memory_mib": a.node_memory,
        "rows": rows,
        "cold_ratio_gap": gap,
        "cold_ratio_gap_concurrency": gap_c,
        "cold_ratio_gap_spares_modelled": modelled,
        "targets": {
            "mean SL <= 5 ms (best run)": best <= 5.0,
            "cold ratio within 10 % of the simulator (shoal)": gap <= 0.10,
            "cold ratio within 10 % of the simulator (shoal+concurrency)": gap_c <= 0.10,
        },
    }
    OUT.mkdir(exist_ok=True)
    (OUT / "faas_replay.json").write_text(json.dumps(out, indent=2) + "\n")
    lines = [
        f"# faas replay: a burst trace on {a.nodes} local agents",
        "",
        f"{out['when']}, {out['machine']}. {len(trace)} calls of {a.functions} functions over "
        f"{a.seconds:g} s (`generate_burst`, seed {a.seed}), nodes of {a.node_memory} MiB; "
        "SL = AcquireContainer as the caller saw it; a call is cold when it found no "
        "room in a warm container; start = CreateContainer. sim: the simulator given the "
        "replay's starts in turn; spares modelled: the simulator with the agents' spares "
        f"modelled instead ({SPARES} per node, faas/starts.py), a start from one as long "
        "as the replay's fast ones, one from scratch as its slow ones.",
        "",
        "| run | cold ratio | sim cold ratio | spares modelled | errors | mean SL ms | p99 SL ms "
        "| warm SL ms | cold SL ms | containers | start ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, row in rows.items():
        x, y, z = row["real"], row["simulated"], row["simulated_spares"]
        lines.append(
            f"| {label} | {x['cold_ratio']:.4f} | {y['cold_ratio']:.4f} | "
            f"{z['cold_ratio']:.4f} | {x['errors']} | "
            f"{x['mean_sl_ms']:.2f} | {x['p99_sl_ms']:.2f} | {x['mean_warm_sl_ms']:.2f} | "
            f"{x['mean_cold_sl_ms']:.1f} | {x['containers']} | {x['mean_create_ms']:.0f} |"
        )
    lines += [
        "",
        f"cold-ratio gap to the simulation: shoal {gap:.1%}, shoal+concurrency {gap_c:.1%} "
        "(the simulator learning calls per container as the scheduler does); with spares "
        "modelled: " + ", ".join(f"{k} {v:.1%}" for k, v in modelled.items()),
        "",
    ]
    lines += [f"- {k}: {'met' if v else 'MISSED'}" for k, v in out["targets"].items()]
    (OUT / "faas_replay.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
