"""Soak (issue 10): hours-long work must not be torn down, and a quiet stream
must not make healthy nodes look dead.

    .venv/bin/python benchmarks/soak.py [--minutes 10] [--every 30]

A 4-node local cluster (separate agent processes, default keepalive). One
`shoal run -W 2 -- 'sleep M*60; echo done'` stays quiet for the whole soak,
through a relay; meanwhile, every E seconds, a `shoal run`, a `shoal ping`
and a `shoal copy` of a small file go through the relays' reused channels
after an idle pause. Every node is up the whole time, so any UNREACHABLE (or
any non-PASS) is false. Writes benchmarks/results/soak.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from shoal.deploy import LocalCluster

ROOT = Path(__file__).resolve().parent.parent
SHOAL = str(Path(sys.executable).parent / "shoal")
OUT = ROOT / "benchmarks" / "results"
NODES = "node[1-4]"


def states(stdout: str) -> dict[str, int]:
    """The summary lines ("PASS: node[1-4], SUM: 4") as {state: count}."""
    out: dict[str, int] = {}
    for line in stdout.splitlines():
        state, sep, rest = line.partition(": ")
        if sep and ", SUM: " in rest and state.isupper():
            out[state] = out.get(state, 0) + int(rest.rsplit("SUM: ", 1)[1])
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--every", type=float, default=30.0)
    args = ap.parse_args()
    quiet_s = int(args.minutes * 60)
    home = Path(tempfile.mkdtemp(prefix="shoal-soak-"))
    env = {**os.environ, "SHOAL_HOME": str(home)}
    payload = home / "payload.bin"
    payload.write_bytes(os.urandom(1 << 20))
    cluster = LocalCluster(home)
    rounds: list[dict[str, Any]] = []
    started = time.time()
    try:
        cluster.start(4)
        quiet = subprocess.Popen(
            [SHOAL, "run", "-W", "2", "-w", NODES, "--json", "--", f"sleep {quiet_s}; echo done"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + quiet_s
        i = 0
        while time.monotonic() < deadline - args.every / 2:
            time.sleep(args.every)
            i += 1
            for kind, argv in (
                ("run", [SHOAL, "run", "-W", "2", "-w", NODES, "--", "true"]),
                ("ping", [SHOAL, "ping", "-W", "2", "-w", NODES]),
                ("copy", [SHOAL, "copy", "-W", "2", "-w", NODES, str(payload), "/tmp/"]),
            ):
                t0 = time.perf_counter()
                cp = subprocess.run(argv, env=env, capture_output=True, text=True)
                got = states(cp.stdout)
                rounds.append(
                    {
                        "round": i,
                        "at_s": round(time.time() - started, 1),
                        "kind": kind,
                        "rc": cp.returncode,
                        "states": got,
                        "wall_ms": round((time.perf_counter() - t0) * 1000, 1),
                    }
                )
                print(f"  {rounds[-1]['at_s']:7.1f}s {kind:5} rc={cp.returncode} {got}", flush=True)
        out, err = quiet.communicate(timeout=quiet_s + 120)
        quiet_doc = json.loads(out) if out.strip() else {}
    finally:
        cluster.down()
        shutil.rmtree(home, ignore_errors=True)
    quiet_states = {n: d["state"] for n, d in quiet_doc.get("nodes", {}).items()}
    quiet_out = {n: d["stdout"] for n, d in quiet_doc.get("nodes", {}).items()}
    false_unreachable = sum(r["states"].get("UNREACHABLE", 0) for r in rounds)
    not_pass = sum(sum(v for k, v in r["states"].items() if k != "PASS") for r in rounds)
    ok = (
        quiet.returncode == 0
        and all(v == "done\n" for v in quiet_out.values())
        and len(quiet_out) == 4
        and false_unreachable == 0
        and not_pass == 0
        and all(r["rc"] == 0 for r in rounds)
    )
    result = {
        "when": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(started)),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "quiet_seconds": quiet_s,
        "every_seconds": args.every,
        "quiet_command": {"rc": quiet.returncode, "states": quiet_states, "stderr": err[-500:]},
        "fan_outs": len(rounds),
        "node_results": sum(sum(r["states"].values()) for r in rounds),
        "false_unreachable": false_unreachable,
        "not_pass": not_pass,
        "target": "zero false UNREACHABLE; the quiet command completes on every node",
        "met": ok,
        "rounds": rounds,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "soak.json").write_text(json.dumps(result, indent=2) + "\n")
    (OUT / "soak.md").write_text(markdown(result))
    print(markdown(result))
    return 0 if ok else 1


def markdown(r: dict[str, Any]) -> str:
    q = r["quiet_command"]
    per_kind: dict[str, list[float]] = {}
    for x in r["rounds"]:
        per_kind.setdefault(x["kind"], []).append(x["wall_ms"])
    lines = [
        "# Soak (benchmarks/soak.py)",
        "",
        f"{r['when']}, {r['machine']['cpus']} CPUs, Python {r['machine']['python']}. "
        f"4 agent processes, default keepalive; a quiet `shoal run -W 2 -- 'sleep "
        f"{r['quiet_seconds']}; echo done'` while a run, a ping and a 1 MiB copy go "
        f"every {r['every_seconds']:g} s.",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| quiet command ({r['quiet_seconds']} s silent) exit status | {q['rc']} |",
        f"| quiet command node states | {', '.join(sorted(set(q['states'].values()))) or '-'} |",
        f"| fan-outs during the soak | {r['fan_outs']} |",
        f"| node results in them | {r['node_results']} |",
        f"| false UNREACHABLE | {r['false_unreachable']} |",
        f"| any other non-PASS | {r['not_pass'] - r['false_unreachable']} |",
    ]
    for kind, walls in sorted(per_kind.items()):
        walls.sort()
        lines.append(f"| `{kind}` median wall ms | {walls[len(walls) // 2]:.0f} |")
    lines += ["", f"Target: {r['target']}: **{'met' if r['met'] else 'missed'}**.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
