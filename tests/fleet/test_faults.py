"""Faults: database unreachable, controller killed mid-replacement."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sys
import textwrap
from pathlib import Path

import psycopg
import pytest

PROVIDER = textwrap.dedent(
    """
    import json, os, sys, time
    d = os.environ["FAKE_CLOUD_DIR"]
    req = json.load(sys.stdin)
    with open(os.path.join(d, "calls.log"), "a") as f:
        f.write(f"{req['action']} {req['name']} {req['key']}\\n")
    hosts_path = os.path.join(d, "hosts.json")
    hosts = json.load(open(hosts_path)) if os.path.exists(hosts_path) else {}
    if req["action"] == "create":
        if os.path.exists(os.path.join(d, "block")):
            open(os.path.join(d, "blocked.pid"), "w").write(str(os.getpid()))
            time.sleep(600)
        if req["key"] not in hosts:  # idempotent by key: never two hosts for one key
            hosts[req["key"]] = {"name": req["name"], "id": f"i-{len(hosts) + 1}"}
            json.dump(hosts, open(hosts_path, "w"))
        print(json.dumps({"ok": True, "id": hosts[req["key"]]["id"]}))
    else:
        print(json.dumps({"ok": True}))
    """
)


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_database_unreachable_then_back_keeps_heartbeats(
    start_controller, db_url: str, until
) -> None:
    ctl = start_controller(flush_interval=0.2)
    name = db_url.rsplit("/", 1)[1]
    admin = db_url.rsplit("/", 1)[0] + "/test"
    with ctl.client("cn1") as agent, ctl.client() as op:
        agent.post("/v1/register", json={"name": "cn1", "facts": {}}).raise_for_status()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
        r = op.get("/healthz")
        assert r.status_code == 503 and "database unreachable" in r.json()["detail"]
        sent = dt.datetime.now(dt.UTC)
        assert agent.post("/v1/heartbeat", json={"name": "cn1"}).status_code == 200
        until(lambda: op.get("/healthz").json()["pending_heartbeats"] == 1)
        assert "shoal_db_up 0.0" in op.get("/metrics").text
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        until(lambda: op.get("/healthz").status_code == 200)

        def stored() -> dt.datetime | None:
            with psycopg.connect(db_url) as c:
                row = c.execute("SELECT last_heartbeat FROM nodes WHERE name='cn1'").fetchone()
                return row[0] if row and row[0] and row[0] >= sent else None

        assert until(stored) >= sent
        assert op.get("/healthz").json()["pending_heartbeats"] == 0


def test_controller_killed_mid_replacement_finishes_once(
    start_controller, tmp_path: Path, until
) -> None:
    cloud = tmp_path / "cloud"
    cloud.mkdir()
    (cloud / "block").write_text("")
    script = tmp_path / "provider.py"
    script.write_text(PROVIDER)
    os.environ["FAKE_CLOUD_DIR"] = str(cloud)
    try:
        ctl = start_controller(
            boot_timeout=1,
            check_interval=0.5,
            policy="replace",
            provider="command",
            provider_command=f"{sys.executable} {script}",
            provider_env='["FAKE_CLOUD_DIR"]',  # the program gets nothing else of ours
            max_pool_percent=100,
        )
        with ctl.client() as c:
            c.post("/v1/nodes", json={"name": "cn5"}).raise_for_status()
        until(lambda: (cloud / "blocked.pid").exists(), timeout=90)
        ctl.kill(signal.SIGKILL)  # the controller dies while the provider is creating
        os.kill(int((cloud / "blocked.pid").read_text()), signal.SIGKILL)
        (cloud / "block").unlink()
        # the replacement host never registers here: keep the restarted controller
        # from replacing it again so the test sees exactly the interrupted operation
        ctl.env["SHOAL_CONTROLLER_BOOT_TIMEOUT"] = "3600"
        ctl.restart()
        with ctl.client() as c:
            until(
                lambda: (
                    c.get("/v1/nodes/cn5").json()["state"] == "provisioning"
                    and any(e["kind"] == "replaced" for e in c.get("/v1/events").json())
                )
            )
            ev = c.get("/v1/events").json()
            assert sum(e["kind"] == "replaced" for e in ev) == 1
            assert any(
                e["kind"] == "reconcile" and "resuming 1 unfinished" in e["reason"] for e in ev
            )
            assert c.get("/v1/nodes/cn5").json()["generation"] == 1
        hosts = json.loads((cloud / "hosts.json").read_text())
        assert list(hosts) == ["replace:cn5:1"]  # one host for one operation
        calls = (cloud / "calls.log").read_text().splitlines()
        assert calls.count("delete cn5 replace:cn5:1") == 1  # delete finished before the kill
        assert calls.count("create cn5 replace:cn5:1") == 2  # re-sent with the same key
    finally:
        os.environ.pop("FAKE_CLOUD_DIR", None)
