"""Certificates carry a role: a node's may register and heartbeat as itself and
do nothing else; only an operator's may change the fleet or start work
(issue 10, item 11)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from shoal.core import tls

JOB = {"name": "pwn", "cron": "@every 1s", "nodes": "cn[1-2]", "command": "id -u > /tmp/pwned"}


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_node_certificate_can_only_be_itself(start_controller) -> None:
    ctl = start_controller()
    with ctl.client("cn1") as node, ctl.client() as op:
        assert node.post("/v1/register", json={"name": "cn1", "facts": {}}).status_code == 200
        assert node.post("/v1/heartbeat", json={"name": "cn1"}).status_code == 200
        op.post("/v1/nodes", json={"name": "cn2"}).raise_for_status()
        refused = [
            node.post("/v1/jobs", json=JOB),
            node.delete("/v1/jobs/any"),
            node.post("/v1/nodes/cn2/drain", json={"reason": "mine now"}),
            node.post("/v1/nodes/cn1/drain", json={}),
            node.post("/v1/nodes/cn2/undrain", json={}),
            node.post("/v1/nodes", json={"name": "cn9"}),
            node.get("/v1/nodes"),
            node.get("/v1/nodes/cn2"),
            node.get("/v1/events"),
            node.get("/v1/jobs"),
            node.get("/v1/jobs/any/runs"),
        ]
        for r in refused:
            assert r.status_code == 403, (r.request.method, r.request.url, r.text)
            assert "has role node" in r.json()["detail"], r.text
        assert "operator certificate" in refused[0].json()["detail"]
        assert "shoal ca issue NAME --role operator" in refused[0].json()["detail"]
        # nothing changed
        assert op.get("/v1/jobs").json() == []
        assert {n["name"]: n["state"] for n in op.get("/v1/nodes").json()} == {
            "cn1": "running",
            "cn2": "provisioning",
        }
        mine = [(e["kind"], e["to"]) for e in op.get("/v1/events").json() if e["actor"] == "cn1"]
        assert mine == [("registered", None), ("state", "running")]  # its registration only
        # monitoring stays open to every certificate of the CA
        assert node.get("/healthz").status_code == 200
        assert node.get("/metrics").status_code == 200
        # the operator may do all of it
        assert op.post("/v1/jobs", json={**JOB, "command": "true"}).status_code == 200
        assert op.post("/v1/nodes/cn2/drain", json={}).json()["state"] == "drained"
        assert op.delete("/v1/jobs/pwn").status_code == 200


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_controller_certificate_reads_but_commands_nothing(start_controller) -> None:
    ctl = start_controller()
    tls.issue(ctl.tls_dir, "ctl2", role=tls.CONTROLLER)
    with ctl.client("ctl2") as c:
        assert c.get("/v1/nodes").status_code == 200
        r = c.post("/v1/jobs", json=JOB)
        assert r.status_code == 403 and "has role controller" in r.json()["detail"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_cli_with_a_node_certificate_says_why(start_controller, shoal_home) -> None:
    """`shoal jobs add` run where only a node's certificate is: one line, exit 2."""
    ctl = start_controller()
    home = shoal_home.parent / "node-home"
    tls_dir = home / "tls"
    tls_dir.mkdir(parents=True)
    (tls_dir / "ca.crt").write_bytes((ctl.tls_dir / "ca.crt").read_bytes())
    tls.issue(ctl.tls_dir, "stolen", out_dir=tls_dir)  # a node's certificate...
    for ext in ("crt", "key"):  # ...where the client's would be
        (tls_dir / f"{tls.CLIENT_NAME}.{ext}").write_bytes((tls_dir / f"stolen.{ext}").read_bytes())
    env = {**ctl.env, "SHOAL_CONTROLLER_URL": ctl.url, "SHOAL_HOME": str(home)}
    argv = [sys.executable, "-m", "shoal.cli.main", "jobs", "add", "--name", "j"]
    argv += ["--cron", "@every 1s", "-w", "cn1", "--", "true"]
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "has role node" in r.stderr and "Traceback" not in r.stderr
    with ctl.client() as c:
        assert c.get("/v1/jobs").json() == []
