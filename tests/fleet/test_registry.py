"""Registry over the real API: real controller process, real mTLS, SQLite and PostgreSQL."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import pytest

from shoal.core import tls

FACTS = {
    "hostname": "cn1",
    "cpus_logical": 8,
    "cpus_physical": 4,
    "memory": 16 * 2**30,
    "interfaces": [{"name": "eth0", "mac": "02:00:00:00:00:01", "addresses": ["10.0.0.5"]}],
    "os": "Test Linux",
}


def test_same_host_registering_twice_is_one_node(start_controller) -> None:
    ctl = start_controller()
    with ctl.client("cn1") as c:
        for _ in range(2):
            r = c.post("/v1/register", json={"name": "cn1", "facts": FACTS})
            assert r.status_code == 200, r.text
    with ctl.client() as c:
        nodes = c.get("/v1/nodes").json()
        assert [n["name"] for n in nodes] == ["cn1"]
        assert nodes[0]["state"] == "running"
        assert nodes[0]["cpus"] == 8 and nodes[0]["address"] == "10.0.0.5"
        show = c.get("/v1/nodes/cn1").json()
        assert show["facts"]["interfaces"][0]["mac"] == "02:00:00:00:00:01"
        kinds = [e["kind"] for e in show["events"]]
        assert kinds.count("registered") == 1


def test_certificate_from_another_ca_is_refused(start_controller, tmp_path: Path) -> None:
    ctl = start_controller()
    other = tmp_path / "other-ca"
    tls.init_ca(other)
    tls.issue(other, "cn1")
    ctx = ssl.create_default_context(cafile=str(ctl.tls_dir / "ca.crt"))
    ctx.load_cert_chain(str(other / "cn1.crt"), str(other / "cn1.key"))
    with (
        httpx.Client(base_url=ctl.url, verify=ctx, trust_env=False) as c,
        pytest.raises(httpx.HTTPError),
    ):
        c.post("/v1/register", json={"name": "cn1", "facts": FACTS})
    # and without any client certificate
    plain = ssl.create_default_context(cafile=str(ctl.tls_dir / "ca.crt"))
    with (
        httpx.Client(base_url=ctl.url, verify=plain, trust_env=False) as c,
        pytest.raises(httpx.HTTPError),
    ):
        c.get("/v1/nodes")
    with ctl.client() as c:
        assert c.get("/v1/nodes").json() == []


def test_a_node_may_only_register_as_its_certificate_name(start_controller) -> None:
    ctl = start_controller()
    with ctl.client("cn2") as c:
        r = c.post("/v1/register", json={"name": "cn1", "facts": FACTS})
        assert r.status_code == 403
        assert "may not act as node 'cn1'" in r.json()["detail"]
        assert c.post("/v1/heartbeat", json={"name": "cn1"}).status_code == 403


def test_heartbeat_drain_events_metrics(start_controller) -> None:
    ctl = start_controller(flush_interval=0.2)
    with ctl.client("cn1") as agent, ctl.client() as op:
        assert agent.post("/v1/heartbeat", json={"name": "cn1"}).status_code == 404
        agent.post("/v1/register", json={"name": "cn1", "facts": FACTS}).raise_for_status()
        assert agent.post("/v1/heartbeat", json={"name": "cn1"}).json() == {"ok": True}
        r = op.post("/v1/nodes/cn1/drain", json={"reason": "disk swap"})
        assert r.json()["state"] == "drained"
        ev = op.get("/v1/events", params={"node": "cn1"}).json()
        last = ev[-1]
        assert (last["from"], last["to"], last["actor"], last["reason"]) == (
            "running",
            "drained",
            "client",
            "disk swap",
        )
        assert op.post("/v1/nodes/cn1/undrain", json={}).json()["state"] == "running"
        assert op.post("/v1/nodes/nope/drain", json={}).status_code == 404
        m = op.get("/metrics").text
        assert 'shoal_nodes{state="running"} 1.0' in m
        assert "shoal_heartbeats_total 1.0" in m
        assert "shoal_heartbeat_age_seconds" in m
        assert op.get("/healthz").json()["ok"] is True
        assert "/v1/register" in op.get("/openapi.json").json()["paths"]


def test_heartbeat_fast_path_keeps_every_check(start_controller, until) -> None:
    """Once a node is known its heartbeats skip FastAPI; the checks must not."""
    ctl = start_controller(flush_interval=0.2)
    with ctl.client("cn1") as agent, ctl.client("cn2") as other, ctl.client() as op:
        agent.post("/v1/register", json={"name": "cn1", "facts": FACTS}).raise_for_status()
        before = op.get("/v1/nodes/cn1").json()["last_heartbeat"]
        assert other.post("/v1/heartbeat", json={"name": "cn1"}).status_code == 403
        bad = [b"not json", b"[1]", b'{"name": 5}', b"{}"]
        for body in bad:
            r = agent.post(
                "/v1/heartbeat", content=body, headers={"content-type": "application/json"}
            )
            assert r.status_code == 422, body
        r = agent.post("/v1/heartbeat", json={"name": "cn1"})
        assert (r.status_code, r.json()) == (200, {"ok": True})
        assert r.headers["content-type"] == "application/json"
        until(lambda: op.get("/healthz").json()["pending_heartbeats"] == 0)
        assert op.get("/v1/nodes/cn1").json()["last_heartbeat"] > before
        m = op.get("/metrics").text
        assert "shoal_heartbeats_total 1.0" in m  # only the good one counted


def test_registration_client_registers_and_heartbeats(start_controller, until) -> None:
    """The agent-side client (shoal.agent.registration) against the real API."""
    import subprocess

    import simagent

    ctl = start_controller(flush_interval=0.2)
    tls.issue(ctl.tls_dir, "sim1")
    p = subprocess.Popen(
        simagent.argv(ctl.url, "sim1", ctl.tls_dir, 0.2), env={**ctl.env, "SHOAL_METADATA": "off"}
    )
    try:
        with ctl.client() as c:
            n = until(
                lambda: (
                    c.get("/v1/nodes/sim1").json()
                    if c.get("/v1/nodes/sim1").status_code == 200
                    else None
                )
            )
            assert n["facts"]["cpus_logical"] >= 1
            assert n["facts"]["interfaces"]
            # the same facts as `shoal facts`, topology included
            assert len(n["facts"]["topology"]["cpus"]) == n["facts"]["cpus_logical"]

            def beats() -> float:
                for line in c.get("/metrics").text.splitlines():
                    if line.startswith("shoal_heartbeats_total "):
                        return float(line.split()[1])
                return 0.0

            until(lambda: beats() >= 3)
    finally:
        p.terminate()
        p.wait(10)


def test_local_cluster_agents_register_with_the_controller(
    start_controller, cluster, until
) -> None:
    """`shoal cluster up --controller URL`: real agents (two in one process) register
    themselves with their facts under their certificates' names."""
    ctl = start_controller(flush_interval=0.2)
    cluster(["cn1", "cn2", "cn3"], per_process=2, controller=ctl.url)
    with ctl.client() as c:

        def all_running() -> list[dict[str, object]] | None:
            ns = c.get("/v1/nodes").json()
            return ns if [n["state"] for n in ns] == ["running"] * 3 else None

        nodes = until(all_running, timeout=90)
        assert [n["name"] for n in nodes] == ["cn1", "cn2", "cn3"]
        facts = c.get("/v1/nodes/cn2").json()["facts"]
        assert facts["cpus_logical"] >= 1 and facts["memory"] > 0


def test_nodes_show_is_for_people_and_json_keeps_raw_values(start_controller) -> None:
    import json
    import subprocess
    import sys

    ctl = start_controller()
    with ctl.client("cn1") as c:
        c.post("/v1/register", json={"name": "cn1", "facts": FACTS}).raise_for_status()
    env = {**ctl.env, "SHOAL_CONTROLLER_URL": ctl.url, "COLUMNS": "100"}
    argv = [sys.executable, "-m", "shoal.cli.main", "nodes", "show", "cn1"]
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    mem = next(line for line in r.stdout.splitlines() if line.startswith("memory "))
    assert mem.split()[-1] == "GiB" and float(mem.split()[-2]) > 0
    seen = next(line for line in r.stdout.splitlines() if line.startswith("registered_at"))
    assert "ago)" in seen and "T" not in seen.split()[1]
    r = subprocess.run([*argv, "--json"], env=env, capture_output=True, text=True, timeout=60)
    assert isinstance(json.loads(r.stdout)["memory"], int)
