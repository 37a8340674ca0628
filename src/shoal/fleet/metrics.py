"""Prometheus exposition of the controller's state."""

from __future__ import annotations

from typing import Any


def render(snap: dict[str, Any]) -> str:
    """The exposition of a Registry.snapshot()."""
    from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

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
    Gauge("shoal_db_up", "Database reachable", registry=reg).set(1 if snap["db_ok"] else 0)
    Gauge("shoal_circuit_breaker_open", "Breaker holding", registry=reg).set(
        1 if snap["breaker_open"] else 0
    )
    Gauge("shoal_watchdog_seconds", "Last watchdog pass", registry=reg).set(
        snap["watchdog_seconds"]
    )
    return generate_latest(reg).decode()
