"""Controller benchmark: simulated agents heartbeating against one controller process.

    .venv/bin/python benchmarks/controller.py [--nodes 10000] [--period 10] [--duration 30]

For each database (SQLite file, PostgreSQL at 127.0.0.1:5432 when reachable) and
each practice (shoal's controller with batched writes; the reference host
manager of naive_controller.py, one UPDATE per heartbeat), it loads NODES
registered nodes into the registry, starts the controller as its own process
in front of them, then sends
NODES heartbeats every PERIOD seconds (evenly paced) from a separate
load-generator process over keep-alive HTTP/1.1 connections, for DURATION
seconds. Reported: heartbeats/s achieved, latency p50/
p99, controller CPU (cores), and the watchdog pass time over NODES nodes.

The controller runs with --insecure here: simulating 10,000 node identities
needs 10,000 client certificates, and with keep-alive connections the TLS
handshake is not on the per-heartbeat path. Results go to
benchmarks/results/controller.{json,md}.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent
PG = "postgresql://postgres@127.0.0.1:5432"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prepare(url: str, n: int) -> None:
    from shoal.fleet.db import make_engine, migrate

    async def schema() -> None:
        eng = make_engine(url)
        try:
            await migrate(eng)
        finally:
            await eng.dispose()

    asyncio.run(schema())
    load_nodes(url, n)


def load_nodes(url: str, n: int) -> None:
    from sqlalchemy import create_engine, insert

    from shoal.fleet.db import Node

    sync = url.replace("postgresql://", "postgresql+psycopg://")
    eng = create_engine(sync)
    now = dt.datetime.now(dt.UTC)
    rows = [
        {
            "name": f"sim{i:05d}",
            "state": "running",
            "pool": "default",
            "created_at": now,
            "state_since": now,
            "registered_at": now,
            "last_heartbeat": now,
            "generation": 0,
            "cpus": 8,
            "memory": 16 << 30,
        }
        for i in range(n)
    ]
    with eng.begin() as c:
        c.execute(insert(Node), rows)
    eng.dispose()


async def http_post(reader: Any, writer: Any, path: str, body: bytes, name: str) -> int:
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: ctl\r\nContent-Type: application/json\r\n"
        f"X-Shoal-Name: {name}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    await reader.readexactly(length)
    return status


async def generate(port: int, nodes: int, period: float, duration: float, conns: int) -> dict:
    rate = nodes / period
    lat: list[float] = []
    sched: list[float] = []
    errors = 0
    start = time.monotonic() + 0.5
    total = int(rate * duration)
    q: asyncio.Queue[tuple[float, str]] = asyncio.Queue()
    for i in range(total):
        q.put_nowait((start + i / rate, f"sim{i % nodes:05d}"))

    async def worker() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while True:
            try:
                due, name = q.get_nowait()
            except asyncio.QueueEmpty:
                break
            d = due - time.monotonic()
            if d > 0:
                await asyncio.sleep(d)
            t0 = time.monotonic()
            try:
                st = await http_post(
                    reader, writer, "/v1/heartbeat", json.dumps({"name": name}).encode(), name
                )
            except (OSError, asyncio.IncompleteReadError):
                errors += 1
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                continue
            t1 = time.monotonic()
            lat.append(t1 - t0)  # service time of this request
            sched.append(t1 - due)  # from its scheduled time: a backlog counts against us
            if st != 200:
                errors += 1
        writer.close()

    t_begin = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(conns)))
    wall = time.monotonic() - max(t_begin, start)
    lat.sort()

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(p * len(lat)))] * 1000 if lat else float("nan")

    return {
        "sent": len(lat),
        "errors": errors,
        "wall_s": wall,
        "rate": len(lat) / wall,
        "target_rate": rate,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": pct(1.0),
        "p99_from_schedule_ms": (
            sorted(sched)[min(len(sched) - 1, int(0.99 * len(sched)))] * 1000
            if sched
            else float("nan")
        ),
    }


def metric(port: int, name: str) -> float:
    import httpx

    for line in httpx.get(f"http://127.0.0.1:{port}/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return float("nan")


def run_case(db: str, url: str, naive: bool, a: argparse.Namespace, home: Path) -> dict:
    import httpx

    port = free_port()
    env = {
        **os.environ,
        "SHOAL_HOME": str(home),
        "SHOAL_CONTROLLER_CHECK_INTERVAL": "5",
        "SHOAL_CONTROLLER_SUSPECT_AFTER": "60",
        "SHOAL_CONTROLLER_DOWN_AFTER": "120",
    }
    # The fleet is in the registry before the controller starts: a controller
    # (re)started in front of running agents, as in production.
    prepare(url, a.nodes)
    log = (home / f"ctl-{db}-{naive}.log").open("wb")
    listen = f"127.0.0.1:{port}"
    if naive:  # the reference practice (naive_controller.py)
        argv = [sys.executable, str(ROOT / "naive_controller.py"), "--db", url, "--listen", listen]
    else:
        argv = [sys.executable, "-m", "shoal.cli.main", "controller", "--db", url]
        argv += ["--listen", listen, "--insecure"]
    p = subprocess.Popen(
        argv,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        for _ in range(300):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        proc = psutil.Process(p.pid)
        c0 = proc.cpu_times()
        t0 = time.monotonic()
        res = asyncio.run(generate(port, a.nodes, a.period, a.duration, a.conns))
        c1 = proc.cpu_times()
        cpu = ((c1.user + c1.system) - (c0.user + c0.system)) / (time.monotonic() - t0)
        time.sleep(a.check_wait)
        res.update(
            db=db,
            mode="naive: UPDATE per heartbeat" if naive else "shoal: batched",
            controller_cpu_cores=cpu,
            watchdog_pass_s=float("nan") if naive else metric(port, "shoal_watchdog_seconds"),
            nodes=a.nodes,
        )
        return res
    finally:
        p.terminate()
        p.wait(30)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=10000)
    ap.add_argument("--period", type=float, default=10.0)
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--conns", type=int, default=64)
    ap.add_argument("--check-wait", type=float, default=6.0)
    ap.add_argument("--db", action="append", choices=["sqlite", "postgresql"])
    a = ap.parse_args()
    import psycopg

    home = Path(f"/tmp/shoal-bench-{uuid.uuid4().hex[:8]}")
    home.mkdir()
    results = []
    for db in a.db or ["sqlite", "postgresql"]:
        for naive in (False, True):
            if db == "sqlite":
                url = f"sqlite:///{home}/fleet-{naive}.db"
                drop = None
            else:
                name = f"shoal_bench_{uuid.uuid4().hex[:8]}"
                with psycopg.connect(f"{PG}/test", autocommit=True) as c:
                    c.execute(f'CREATE DATABASE "{name}"')
                url, drop = f"{PG}/{name}", name
            try:
                r = run_case(db, url, naive, a, home)
            finally:
                if drop:
                    with psycopg.connect(f"{PG}/test", autocommit=True) as c:
                        c.execute(f'DROP DATABASE IF EXISTS "{drop}" WITH (FORCE)')
            print(json.dumps(r), flush=True)
            results.append(r)
    out = ROOT / "results"
    out.mkdir(exist_ok=True)
    meta = {
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "args": vars(a),
    }
    (out / "controller.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    lines = render(results, a.nodes, a.period, a.duration)
    (out / "controller.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def render(results: list[dict], nodes: int, period: float, duration: float) -> list[str]:
    lines = [
        f"# Controller benchmark ({nodes} nodes, one heartbeat each per {period:g} s,"
        f" {duration:g} s, {os.cpu_count()} CPUs)",
        "",
        "The load generator, the controller and PostgreSQL share the same two cores;",
        "latency is from sending a heartbeat to its answer. The nodes are registered",
        "before the controller starts (a controller restarted in front of a running",
        "fleet); the watchdog checks every 5 s, and a pass reads only the rows that",
        "may need action (all of them when the whole fleet is silent).",
        "",
        "| DB | mode | target hb/s | achieved hb/s | p50 ms | p99 ms | errors |"
        " controller CPU (cores) | watchdog pass s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        wd = r["watchdog_pass_s"]
        lines.append(
            f"| {r['db']} | {r['mode']} | {r['target_rate']:.0f} | {r['rate']:.0f} |"
            f" {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['errors']} |"
            f" {r['controller_cpu_cores']:.2f} | {'-' if wd != wd else f'{wd:.3f}'} |"
        )
    pg = next((r for r in results if r["db"] == "postgresql" and "batched" in r["mode"]), None)
    if pg:
        sustained = pg["rate"] >= 0.98 * pg["target_rate"] and pg["errors"] == 0
        passes = max(r["watchdog_pass_s"] for r in results if "batched" in r["mode"])
        lines += [
            "",
            "| target (PostgreSQL, batched) | measured | |",
            "|---|---|---|",
            f"| {nodes} nodes every {period:g} s sustained | {pg['rate']:.0f} hb/s |"
            f" {'met' if sustained else '**missed**'} |",
            f"| p99 < 50 ms | {pg['p99_ms']:.0f} ms |"
            f" {'met' if pg['p99_ms'] < 50 else '**missed**'} |",
            f"| controller under one core | {pg['controller_cpu_cores']:.2f} cores |"
            f" {'met' if pg['controller_cpu_cores'] < 1 else '**missed**'} |",
            f"| watchdog pass < 1 s | {passes:.2f} s (worst) |"
            f" {'met' if passes < 1 else '**missed**'} |",
        ]
    return lines


if __name__ == "__main__":
    main()
