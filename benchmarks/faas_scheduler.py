"""The scheduler's warm path (issue 16, Performance: Scheduler):
AcquireContainer + ReturnContainer at a fixed rate for a fixed time, open
loop, against `shoal faas scheduler` over real agents with mutual TLS; side
by side, the same load against a server of the same stack that answers
Acquire with a constant (the floor: a Python gRPC round trip here).

    .venv/bin/python benchmarks/faas_scheduler.py [--rate 2000] [--seconds 60]

Target: p99 of AcquireContainer <= 1 ms at 2,000 calls/s for 60 s, 0 errors.
Writes benchmarks/results/faas_scheduler.{json,md}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from run_fanout import shoal_cluster

from shoal.core.config import Settings
from shoal.core.wire.shoal.v1 import faas_pb2 as xpb
from shoal.errors import SchedulingError
from shoal.faas.client import Client

OUT = Path(__file__).resolve().parent / "results"
WARM = 8  # containers made before the timed run


async def load(port: int, rate: float, seconds: float, settings: Settings) -> dict[str, Any]:
    c = Client(f"127.0.0.1:{port}", settings)
    config = xpb.FunctionConfig(handler="cat", memory_in_bytes=128 << 20, timeout_in_ms=60_000)
    run = uuid.uuid4().hex[:8]  # request ids are once per scheduler
    lat: list[int] = []
    errors: list[str] = []
    seq = 0

    async def one(rid: str, record: bool) -> None:
        t0 = time.perf_counter_ns()
        try:
            a = await c.acquire("bench", rid, config)
        except SchedulingError as e:
            errors.append(e.message)
            return
        if record:
            lat.append(time.perf_counter_ns() - t0)
        req = xpb.ReturnContainerRequest(request_id=rid, container_id=a.container_id)
        try:
            await c.scheduler.ReturnContainer(req)
        except Exception as e:  # counted, reported
            errors.append(str(e))

    # warm: WARM concurrent calls make WARM containers (a cold start each)
    held = [await c.acquire("bench", f"{run}-warm-{i}", config) for i in range(WARM)]
    for i, a in enumerate(held):
        await c.scheduler.ReturnContainer(
            xpb.ReturnContainerRequest(request_id=f"{run}-warm-{i}", container_id=a.container_id)
        )
    pending: set[asyncio.Task[None]] = set()
    start = time.perf_counter()
    n = int(rate * seconds)
    for i in range(n):
        at = start + i / rate
        delay = at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        seq += 1
        t = asyncio.create_task(one(f"{run}-r{seq}", True))
        pending.add(t)
        t.add_done_callback(pending.discard)
    await asyncio.gather(*pending)
    took = time.perf_counter() - start
    await c.close()
    a = np.array(lat) / 1e6
    return {
        "calls": n,
        "errors": len(errors),
        "first_errors": errors[:3],
        "achieved_rate": n / took,
        "p50_ms": float(np.percentile(a, 50)) if len(a) else None,
        "p99_ms": float(np.percentile(a, 99)) if len(a) else None,
        "p999_ms": float(np.percentile(a, 99.9)) if len(a) else None,
        "max_ms": float(a.max()) if len(a) else None,
    }


def serve_floor() -> None:
    """A Scheduler server that answers at once: the cost of the stack alone."""
    import grpc

    from shoal.core import tls
    from shoal.core.wire.shoal.v1 import faas_pb2_grpc as xrpc

    class Floor(xrpc.SchedulerServicer):
        async def AcquireContainer(self, request: Any, context: Any) -> Any:
            return xpb.AcquireContainerReply(
                node_id="n", node_address="127.0.0.1", node_service_port=1, container_id="c"
            )

        async def ReturnContainer(self, request: Any, context: Any) -> Any:
            return xpb.ReturnContainerReply()

    async def main() -> None:
        s = Settings.load()
        from shoal.fanout.client import client_identity

        server = grpc.aio.server(options=s.keepalive.server_options())
        xrpc.add_SchedulerServicer_to_server(Floor(), server)
        port = server.add_secure_port("127.0.0.1:0", tls.server_credentials(client_identity(s)))
        await server.start()
        print(f"floor listening on port {port}", flush=True)
        await server.wait_for_termination()

    asyncio.run(main())


def _started(cmd: list[str], env: dict[str, str], word: str) -> tuple[subprocess.Popen[str], int]:
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    assert p.stdout is not None
    line = p.stdout.readline()
    if word not in line:
        p.kill()
        raise SystemExit(f"did not start: {cmd}: {line!r}")
    return p, int(line.split("port ")[1].split(":")[0].split()[0])


def _row(port: int, pid: int, rate: float, seconds: float, settings: Settings) -> dict[str, Any]:
    proc = psutil.Process(pid)
    before = sum(proc.cpu_times()[:2])
    r = asyncio.run(load(port, rate, seconds, settings))
    r["server_cpu_us_per_call"] = (sum(proc.cpu_times()[:2]) - before) / (r["calls"] + WARM) * 1e6
    return r


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rates", default="500,1000,2000", help="calls/s, comma-separated")
    ap.add_argument("--seconds", type=float, default=60.0)
    a = ap.parse_args()
    rates = [float(x) for x in a.rates.split(",")]
    rows: list[dict[str, Any]] = []
    with shoal_cluster(2, 1) as (_, env):
        os.environ["SHOAL_HOME"] = env["SHOAL_HOME"]
        settings = Settings.load()
        sched, port = _started(
            [sys.executable, "-m", "shoal.cli.main", "faas", "scheduler", "-w", "@all",
             "--policy", "ttl-20", "--start-nodes", "2", "--max-nodes", "2"],
            env, "listening",
        )  # fmt: skip
        floor, fport = _started([sys.executable, __file__, "--serve-floor"], env, "listening")
        try:
            for rate in rates:
                for name, prt, pid in (("shoal", port, sched.pid), ("floor", fport, floor.pid)):
                    print(f"  {name} at {rate:g}/s for {a.seconds:g} s", flush=True)
                    rows.append(
                        {"server": name, "rate": rate, **_row(prt, pid, rate, a.seconds, settings)}
                    )
        finally:
            sched.terminate()
            sched.wait(timeout=60)
            floor.kill()
            floor.wait()
    top = max(rates)
    s = next(r for r in rows if r["server"] == "shoal" and r["rate"] == top)
    f = next(r for r in rows if r["server"] == "floor" and r["rate"] == top)
    out = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "seconds": a.seconds,
        "rows": rows,
        "p99_over_floor_at_top_rate": s["p99_ms"] / f["p99_ms"],
        "targets": {
            f"p99 <= 1 ms at {top:g}/s": s["p99_ms"] <= 1.0,
            "0 errors": s["errors"] == 0,
            f"{top:g}/s held (>= 98 %)": s["achieved_rate"] >= 0.98 * top,
        },
    }
    OUT.mkdir(exist_ok=True)
    (OUT / "faas_scheduler.json").write_text(json.dumps(out, indent=2) + "\n")
    lines = [
        f"# faas scheduler: warm AcquireContainer + ReturnContainer, {a.seconds:g} s per rate",
        "",
        f"{out['when']}, {out['machine']}. Open loop from one client process; latency of",
        "AcquireContainer as the caller sees it, mutual TLS. floor: a server of the same",
        "stack that answers at once (the cost of a Python gRPC round trip here).",
        "",
        "| server | rate asked | rate held | calls | errors | p50 ms | p99 ms | p99.9 ms "
        "| server CPU us/call |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['server']} | {r['rate']:g} | {r['achieved_rate']:.0f} | {r['calls']} | "
            f"{r['errors']} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} | {r['p999_ms']:.3f} | "
            f"{r['server_cpu_us_per_call']:.0f} |"
        )
    lines += ["", f"p99 shoal / floor at {top:g}/s: {out['p99_over_floor_at_top_rate']:.2f}", ""]
    lines += [f"- {k}: {'met' if v else 'MISSED'}" for k, v in out["targets"].items()]
    errs = [e for r in rows for e in r["first_errors"]]
    if errs:
        lines += ["", f"first errors: {'; '.join(errs[:3])}"]
    (OUT / "faas_scheduler.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve-floor"]:
        serve_floor()
    else:
        main()
