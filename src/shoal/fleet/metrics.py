"""Prometheus exposition of the controller's state."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select

from shoal.fleet.controller import STATES, Controller
from shoal.fleet.db import Node
from shoal.fleet.dbhealth import DB_ERRORS


async def snapshot(ctl: Controller) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC)
    by_state = dict.fromkeys(STATES, 0)
    ages: list[float] = []
    try:
        async with ctl.session() as sess:
            rows = (await sess.execute(select(Node.name, Node.state, Node.last_heartbeat))).all()
        ctl.last_rows = list(rows)
    except DB_ERRORS as e:
        ctl.health.failed(e, writing=False)
        rows = ctl.last_rows  # the last known registry, while the DB is away
    for name, state, hb in rows:
        by_state[state] = by_state.get(state, 0) + 1
        last = max(filter(None, [hb, ctl.last_hb.get(name)]), default=None)
        if last is not None and state != "drained":
            ages.append((now - last).total_seconds())
    return {
        "nodes": by_state,
        "heartbeat_age_max": max(ages, default=0.0),
        "heartbeat_age_mean": sum(ages) / len(ages) if ages else 0.0,
        **ctl.counters,
    }


async def render(ctl: Controller) -> str:
    from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

    snap = await snapshot(ctl)
    reg = CollectorRegistry()
    g = Gauge("shoal_nodes", "Nodes by state", ["state"], registry=reg)
    for st, n in snap["nodes"].items():
        g.labels(st).set(n)
    age = Gauge("shoal_heartbeat_age_seconds", "Heartbeat age", ["stat"], registry=reg)
    age.labels("max").set(snap["heartbeat_age_max"])
    age.labels("mean").set(snap["heartbeat_age_mean"])
    for key, help_ in (
        ("heartbeats", "Heartbeats received"),
        ("job_runs", "Job runs started"),
        ("job_failures", "Job runs failed"),
        ("job_skips", "Job runs skipped (still running)"),
        ("replacements", "Hosts replaced"),
        ("replacement_failures", "Replacement attempts failed"),
    ):
        c = Counter(f"shoal_{key}", help_, registry=reg)
        c.inc(snap[key])
    Gauge("shoal_db_up", "Database reachable", registry=reg).set(1 if ctl.db_ok else 0)
    Gauge("shoal_circuit_breaker_open", "Breaker holding", registry=reg).set(
        1 if ctl.breaker_open else 0
    )
    Gauge("shoal_watchdog_seconds", "Last watchdog pass", registry=reg).set(ctl.watchdog_seconds)
    return generate_latest(reg).decode()
