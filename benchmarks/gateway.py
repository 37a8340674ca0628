"""Gateway benchmark: three backends (one 3x slower), 30/100/200 concurrent
clients, each doing a fixed number of runs; side by side in one run:
shoal gateway (p2c), shoal gateway --balance random, nginx round-robin, and
one backend directly. Then a backend killed under load.

    bash scripts/bench-gateway-deps.sh && .venv/bin/python benchmarks/gateway.py

The backends are tests/gateway/jobe_backend.py in --echo mode: a run holds
a slot for --delay seconds (500 ms; 1.5 s on the slow one, about a compile
and run on a real Jobe) and executes nothing. With shorter runs the clients,
gateways and backends sharing two cores saturate the CPU and the table
measures the machine, not the routing.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "gateway"))
from procs import API, Proc, free_port, start_backend, start_gateway, write_config  # noqa: E402

CLIENTS = (30, 100, 200)
OVERHEAD_CLIENTS = (1, 8)  # concurrent clients for the added-latency measurement
OVERHEAD_ROUNDS = 5  # interleaved rounds of 1,600 runs per side; the median is reported
RUNS_EACH = 5
DELAY = 0.5
SPEC = {"run_spec": {"language_id": "python3", "sourcecode": "print(1)", "input": "x"}}


async def load(base: str, clients: int, runs_each: int) -> dict[str, Any]:
    """`clients` concurrent clients, each doing `runs_each` runs in a row. The
    generator is aiohttp (C parser): with httpx it was itself the bottleneck
    on these two cores, ~1 ms of CPU per request."""
    lat: list[float] = []
    errors = 0
    body = json.dumps(SPEC).encode()
    hdrs = {"Content-Type": "application/json"}
    conn = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=120)) as c:

        async def client() -> None:
            nonlocal errors
            for _ in range(runs_each):
                t0 = time.perf_counter()
                try:
                    async with c.post(base + API + "/runs", data=body, headers=hdrs) as r:
                        got = await r.read()
                    ok = r.status == 200 and json.loads(got).get("outcome") == 15
                except (aiohttp.ClientError, TimeoutError, ValueError):
                    ok = False
                lat.append(time.perf_counter() - t0)
                errors += not ok

        t0 = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        wall = time.perf_counter() - t0
    lat.sort()
    n = len(lat)
    return {
        "clients": clients,
        "runs": n,
        "errors": errors,
        "throughput": round(n / wall, 1),
        "p50_ms": round(lat[n // 2] * 1000, 1),
        "p99_ms": round(lat[min(n - 1, int(n * 0.99))] * 1000, 1),
    }


def nginx(tmp: Path, backends: list[Proc]) -> Proc | None:
    exe = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if exe is None:
        return None
    port = free_port()
    ups = "\n".join(f"server {b.url.removeprefix('http://')};" for b in backends)
    conf = tmp / "nginx.conf"
    conf.write_text(
        f"""daemon off; worker_processes 1; pid {tmp}/nginx.pid; error_log {tmp}/nginx.err;
events {{ worker_connections 4096; }}
http {{ access_log off; client_body_temp_path {tmp}; proxy_temp_path {tmp};
 fastcgi_temp_path {tmp}; uwsgi_temp_path {tmp}; scgi_temp_path {tmp};
 upstream jobe {{ {ups} keepalive 256; }}
 server {{ listen 127.0.0.1:{port};
  location / {{ proxy_pass http://jobe; proxy_http_version 1.1;
   proxy_set_header Connection ""; proxy_read_timeout 120s; }} }} }}
"""
    )
    p = subprocess.Popen([exe, "-c", str(conf), "-p", str(tmp)])
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            httpx.get(url + API + "/languages", timeout=1)
            return Proc(url, p)
        except httpx.HTTPError:
            time.sleep(0.05)
    p.kill()
    return None


async def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="shoal-bench-gw-"))
    bs = [
        start_backend(tmp, slots=16, wait=10, delay=DELAY * (3 if i == 2 else 1), echo=True)
        for i in range(3)
    ]
    head = f'[gateway]\nfiles_dir = "{tmp / "files"}"\nhealth_interval = 0.5\nqueue_timeout = 30\n'
    cfg = write_config(tmp / "gw.toml", [{"url": b.url} for b in bs], head)
    targets: dict[str, Proc | None] = {
        "shoal p2c": start_gateway(cfg, "--quiet"),
        "shoal random": start_gateway(cfg, "--quiet", "--balance", "random"),
        "nginx round-robin": nginx(tmp, bs),
        "direct (one backend)": bs[0],
    }
    results: dict[str, Any] = {
        "config": {
            "delay_ms": DELAY * 1000,
            "slow_ms": DELAY * 3000,
            "runs_each": RUNS_EACH,
            "slots": 16,
        },
        "rows": [],
    }
    try:
        for n in CLIENTS:
            for name, t in targets.items():
                if t is None:
                    continue
                await load(t.url, min(n, 20), 1)  # warm the connections
                row = {"target": name, **await load(t.url, n, RUNS_EACH)}
                print(json.dumps(row), flush=True)
                results["rows"].append(row)
        # a backend killed under load, through the default gateway
        g = targets["shoal p2c"]
        assert g is not None
        task = asyncio.create_task(load(g.url, 100, 10))
        await asyncio.sleep(1.0)
        bs[1].kill()
        kill = {"target": "shoal p2c, backend killed", **await task}
        print(json.dumps(kill), flush=True)
        results["kill"] = kill
    finally:
        for t in targets.values():
            if t is not None:
                t.stop()
        for b in bs:
            b.stop()
    # gateway overhead: one zero-delay backend, direct vs through a gateway, no queueing
    b0 = start_backend(tmp, slots=16, wait=10, delay=0.0, echo=True)
    cfg0 = write_config(tmp / "gw0.toml", [{"url": b0.url}], head)
    g0 = start_gateway(cfg0, "--quiet")
    try:
        over: dict[str, Any] = {}
        for n in OVERHEAD_CLIENTS:
            # rounds of (direct, shoal) back to back, the added latency taken per
            # round: a VM whose speed drifts by the minute moves both sides alike
            rounds: list[dict[str, Any]] = []
            for _ in range(OVERHEAD_ROUNDS):
                o: dict[str, Any] = {}
                for name, t in (("direct", b0), ("shoal p2c", g0)):
                    await load(t.url, n, 5)
                    cpu0 = _cpu(t)
                    o[name] = await load(t.url, n, 1600 // n)
                    # the server's CPU per run: the gateway's own cost (or the backend's)
                    o[name]["server_cpu_ms_per_run"] = round(
                        1000 * (_cpu(t) - cpu0) / o[name]["runs"], 3
                    )
                o["added_p50_ms"] = round(o["shoal p2c"]["p50_ms"] - o["direct"]["p50_ms"], 1)
                o["added_p99_ms"] = round(o["shoal p2c"]["p99_ms"] - o["direct"]["p99_ms"], 1)
                print(n, json.dumps(o), flush=True)
                rounds.append(o)
            over[str(n)] = {
                "rounds": rounds,
                **{
                    k: statistics.median(r[k] for r in rounds)
                    for k in ("added_p50_ms", "added_p99_ms")
                },
                **{
                    f"{side}_{k}": statistics.median(r[side][k] for r in rounds)
                    for side in ("direct", "shoal p2c")
                    for k in ("p50_ms", "p99_ms", "server_cpu_ms_per_run")
                },
            }
        results["overhead"] = over
    finally:
        g0.stop()
        b0.stop()
    write(results)


def _cpu(p: Proc) -> float:
    t = psutil.Process(p.popen.pid).cpu_times()
    return float(t.user + t.system)


def write(res: dict[str, Any]) -> None:
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "gateway.json").write_text(json.dumps(res, indent=2) + "\n")
    rows = res["rows"]
    cfg = res["config"]
    lines = [
        "# Gateway benchmark (benchmarks/gateway.py)",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M')} on {os.cpu_count()} cores. Three echo"
        f" backends with {cfg['slots']} slots each; a run holds a slot {cfg['delay_ms']:.0f} ms"
        f" ({cfg['slow_ms']:.0f} ms on the slow one); every client does {cfg['runs_each']}"
        " runs. Clients, gateways, nginx and backends share the machine.",
        "",
        "| clients | target | runs | errors | runs/s | p50 ms | p99 ms | p99 vs shoal p2c |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        base = next(x for x in rows if x["clients"] == r["clients"] and x["target"] == "shoal p2c")
        ratio = r["p99_ms"] / base["p99_ms"] if base["p99_ms"] else 0
        lines.append(
            f"| {r['clients']} | {r['target']} | {r['runs']} | {r['errors']} | "
            f"{r['throughput']} | {r['p50_ms']} | {r['p99_ms']} | {ratio:.2f}x |"
        )
    k = res.get("kill")
    if k:
        lines.append("")
        lines.append(
            f"Backend killed under load (100 clients x 10 runs via shoal p2c): "
            f"{k['runs']} runs, {k['errors']} errors, p99 {k['p99_ms']} ms."
        )
    for n, o in (res.get("overhead") or {}).items():
        per = ", ".join(f"{r['added_p50_ms']:+}/{r['added_p99_ms']:+}" for r in o["rounds"])
        lines.append("")
        lines.append(
            f"Overhead ({n} client(s), one zero-delay backend, median of {len(o['rounds'])}"
            f" interleaved rounds of {o['rounds'][0]['direct']['runs']} runs per side):"
            f" direct p50 {o['direct_p50_ms']} ms / p99 {o['direct_p99_ms']} ms; through"
            f" shoal p50 {o['shoal p2c_p50_ms']} ms / p99 {o['shoal p2c_p99_ms']} ms;"
            f" added {o['added_p50_ms']} ms p50, {o['added_p99_ms']} ms p99 (rounds, ms"
            f" p50/p99: {per}); CPU per run: gateway {o['shoal p2c_server_cpu_ms_per_run']} ms,"
            f" backend {o['direct_server_cpu_ms_per_run']} ms."
        )
    lines += targets(res)
    (out / "gateway.md").write_text("\n".join(lines) + "\n")


def targets(res: dict[str, Any]) -> list[str]:
    rows = res["rows"]
    out = ["", "| target | measured | |", "|---|---|---|"]

    def mark(ok: bool) -> str:
        return "met" if ok else "**missed**"

    at200 = [r for r in rows if r["clients"] == max(CLIENTS) and r["target"].startswith("shoal")]
    errs = sum(r["errors"] for r in at200)
    out.append(
        f"| no errors at {max(CLIENTS)} clients (gateway) | {errs} errors | {mark(errs == 0)} |"
    )
    for n, o in (res.get("overhead") or {}).items():
        ok = o["added_p50_ms"] < 2 and o["added_p99_ms"] < 10
        out.append(
            f"| adds < 2 ms p50, < 10 ms p99 ({n} client(s)) | +{o['added_p50_ms']} ms p50,"
            f" +{o['added_p99_ms']} ms p99 | {mark(ok)} |"
        )
    for n in CLIENTS:
        by = {r["target"]: r["p99_ms"] for r in rows if r["clients"] == n}
        if "shoal p2c" not in by:
            continue
        worst = min(by.get("shoal random", 0), by.get("nginx round-robin", 0)) / by["shoal p2c"]
        out.append(
            f"| {n} clients: p99 >= 2x better than random and round-robin | {worst:.2f}x |"
            f" {mark(worst >= 2)} |"
        )
    k = res.get("kill")
    if k:
        out.append(
            f"| backend killed: zero failed runs | {k['errors']} | {mark(k['errors'] == 0)} |"
        )
    return out


if __name__ == "__main__":
    asyncio.run(main())
