"""Lifecycle: detection, replacement through the local provider, circuit breaker."""

from __future__ import annotations

import datetime as dt
import subprocess
from typing import Any

import pytest

from shoal.core import tls
from shoal.deploy import AgentNode, agent_argv


def real_agent(ctl: Any, name: str) -> subprocess.Popen[bytes]:
    """A real agent that registers with ctl and heartbeats every 0.3 s."""
    if not (ctl.tls_dir / f"{name}.crt").exists():
        tls.issue(ctl.tls_dir, name)
    node = AgentNode(name, tls_dir=ctl.tls_dir)
    return subprocess.Popen(agent_argv([node], controller=ctl.url, heartbeat=0.3), env=ctl.env)


@pytest.mark.timeout(400)
def test_host_that_never_registers_is_replaced(start_controller, until) -> None:
    """boot timeout 2 s + check interval 1 s: the watchdog replaces it, the new one registers."""
    ctl = start_controller(
        boot_timeout=2,
        check_interval=1,
        policy="replace",
        provider="local",
        max_pool_percent=100,
    )
    tls.issue(ctl.tls_dir, "cn5")  # the identity the replacement agent will use
    with ctl.client() as c:
        assert c.post("/v1/nodes", json={"name": "cn5"}).status_code == 200
        assert c.get("/v1/nodes/cn5").json()["state"] == "provisioning"

        def replaced_and_running() -> bool:
            n = c.get("/v1/nodes/cn5").json()
            return n["state"] == "running" and n["generation"] >= 1

        until(replaced_and_running, timeout=150)
        ev = c.get("/v1/events", params={"node": "cn5"}).json()
        path = [(e["from"], e["to"]) for e in ev if e["kind"] == "state"]
        assert path[:4] == [
            (None, "provisioning"),
            ("provisioning", "down"),
            ("down", "replacing"),
            ("replacing", "provisioning"),
        ]
        # on a loaded host the new agent may itself miss the 2 s boot timeout and be
        # replaced again (policy); either way it ends registered and running
        assert path[-1][1] == "running"
        down = next(e for e in ev if e["to"] == "down")
        assert "boot timeout 2s" in down["reason"]
        # detected within boot timeout + one check interval (+ slack for a busy
        # test machine): the watchdog's own clock, from the event rows
        born = dt.datetime.fromisoformat(ev[0]["at"])
        assert (dt.datetime.fromisoformat(down["at"]) - born).total_seconds() <= 2 + 1 + 3
        gen = c.get("/v1/nodes/cn5").json()["generation"]
        assert sum(e["kind"] == "replaced" for e in ev) == gen  # one per operation
        assert f"shoal_replacements_total {gen}.0" in c.get("/metrics").text
    # the provider's agent is stopped by the start_controller fixture


@pytest.mark.timeout(400)
def test_half_the_fleet_silent_holds_the_breaker(start_controller, until) -> None:
    ctl = start_controller(
        suspect_after=2,
        down_after=4,
        check_interval=0.5,
        policy="replace",
        provider="local",
        breaker_fraction=0.5,
        breaker_min_nodes=4,
        flush_interval=0.2,
    )
    agents = {n: real_agent(ctl, n) for n in ("cn1", "cn2", "cn3", "cn4")}
    try:
        with ctl.client() as c:
            until(
                lambda: [n["state"] for n in c.get("/v1/nodes").json()] == ["running"] * 4,
                timeout=150,
            )
            for n in ("cn3", "cn4"):  # half the fleet goes silent together
                agents[n].terminate()
                agents[n].wait(10)
            until(
                lambda: any(e["kind"] == "circuit-breaker" for e in c.get("/v1/events").json()),
                timeout=150,
            )
            ev = next(e for e in c.get("/v1/events").json() if e["kind"] == "circuit-breaker")
            assert "2 of 4 nodes silent together" in ev["reason"]
            assert "likely a network partition" in ev["reason"]
            # several more watchdog passes: still held, nothing marked down or replaced
            until(
                lambda: (
                    float(c.get("/metrics").text.split("shoal_heartbeats_total ")[-1].split()[0])
                    > 30
                )
            )
            states = {n["name"]: n["state"] for n in c.get("/v1/nodes").json()}
            assert states == {
                "cn1": "running",
                "cn2": "running",
                "cn3": "suspect",
                "cn4": "suspect",
            }
            assert "shoal_circuit_breaker_open 1.0" in c.get("/metrics").text
            assert not any(e["kind"] == "replaced" for e in c.get("/v1/events").json())
    finally:
        for p in agents.values():
            p.terminate()
            p.wait(10)
