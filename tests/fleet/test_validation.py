"""Hostile and malformed input gets a 4xx naming what is wrong, never a 500;
request bodies are bounded (issue 10, item 8)."""

from __future__ import annotations

import socket
import ssl
from typing import Any

import pytest

GOOD = {"name": "cn1", "facts": {"cpus_logical": 8, "memory": 2**34}}


def raw_register(c: Any, body: bytes) -> Any:
    return c.post("/v1/register", content=body, headers={"content-type": "application/json"})


BAD = [
    b'{"name": "cn1", "facts": {"interfaces": [{"name": "eth0", "addresses": 5}]}}',
    b'{"name": "cn1", "facts": {"interfaces": [{"addresses": ["10.0.0.1"]}]}}',
    b'{"name": "cn1", "facts": {"interfaces": "eth0"}}',
    b'{"name": "cn1", "facts": {"memory": 1e400}}',
    b'{"name": "cn1", "facts": {"memory": -1e400}}',
    b'{"name": "cn1", "facts": {"memory": NaN}}',
    b'{"name": "cn1", "facts": {"memory": Infinity}}',
    b'{"name": "cn1", "facts": {"memory": 100000000000000000000000000000}}',
    b'{"name": "cn1", "facts": {"cpus_logical": 4294967296}}',
    b'{"name": "cn1", "facts": {"memory": "lots"}}',
    b'{"name": "cn1", "facts": {"extra": ' + b"9" * 5000 + b"}}",
    b'{"name": "cn1", "facts": {"extra": 1e999}}',
    b'{"name": "cn1", "facts": ' + b"[" * 100000 + b"]" * 100000 + b"}",
    b'{"name": "cn1", "pool": "' + b"p" * 300 + b'", "facts": {}}',
    b'{"name": "cn1", "facts": {}, "surprise": 1}',
    b'{"name": "cn1", "facts": [1, 2]}',
    b"not json",
]


def test_bad_register_bodies_are_4xx_and_store_nothing(start_controller) -> None:
    ctl = start_controller()
    with ctl.client("cn1") as agent, ctl.client() as op:
        for body in BAD:
            r = raw_register(agent, body)
            assert r.status_code == 422, (body[:80], r.status_code, r.text[:300])
            assert r.json()["detail"]
        assert op.get("/v1/nodes").json() == []
        assert agent.post("/v1/register", json=GOOD).status_code == 200  # still serving
        assert op.get("/v1/nodes/cn1").json()["memory"] == 2**34


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_bad_query_parameters_are_4xx(start_controller) -> None:
    ctl = start_controller()
    with ctl.client() as c:
        for since in ("1e12", "nan", "inf", "-inf", "1e308", "-1e308", "-1", "soon"):
            r = c.get("/v1/events", params={"since": since})
            assert r.status_code == 422, (since, r.status_code, r.text[:200])
        for limit in (str(10**20), "0", "-5", "1e3"):
            assert c.get("/v1/events", params={"limit": limit}).status_code == 422, limit
            assert c.get("/v1/jobs/x/runs", params={"limit": limit}).status_code == 422
        assert c.get("/v1/nodes", params={"state": "asleep"}).status_code == 422
        assert c.get("/v1/events", params={"node": "x" * 5000}).status_code == 422
        assert c.get("/v1/events", params={"since": "86400", "limit": "10"}).status_code == 200
        r = c.post("/v1/nodes", json={"name": "a b", "pool": "default"})
        assert r.status_code == 422
        r = c.post("/v1/nodes/cn1/drain", json={"reason": "r" * 5000})
        assert r.status_code == 422
        job = {"name": "j", "cron": "@every 1m", "nodes": "cn1", "command": "x" * 70000}
        assert c.post("/v1/jobs", json=job).status_code == 422
        assert c.get("/v1/jobs").json() == []


def _raw_tls(ctl: Any) -> ssl.SSLSocket:
    ctx = ssl.create_default_context(cafile=str(ctl.tls_dir / "ca.crt"))
    ctx.load_cert_chain(str(ctl.tls_dir / "cn1.crt"), str(ctl.tls_dir / "cn1.key"))
    host, port = ctl.url.removeprefix("https://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    return ctx.wrap_socket(sock, server_hostname=host)


def _status(s: ssl.SSLSocket) -> int:
    data = b""
    while b"\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    return int(data.split()[1])


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_100_mib_body_is_refused_before_it_is_read(start_controller) -> None:
    ctl = start_controller()
    with ctl.client("cn1"):
        pass  # issues cn1's certificate
    head = (
        "POST /v1/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {100 * 2**20}\r\n\r\n"
    ).encode()
    with _raw_tls(ctl) as s:
        s.sendall(head + b'{"name": "cn1", "facts": {"x": "')  # and no more of the 100 MiB
        assert _status(s) == 413
    # streamed without a length: refused once past the cap, the rest never sent
    head = (
        b"POST /v1/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"a" * 65536
    with _raw_tls(ctl) as s:
        s.sendall(head)
        for _ in range(24):  # 1.5 MiB of the 100, past the 1 MiB default cap
            s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        assert _status(s) == 413
    with ctl.client() as c:
        assert c.get("/v1/nodes").json() == []


def test_a_misspelt_setting_is_an_error_not_a_default(shoal_home, tmp_path) -> None:
    import subprocess
    import sys

    argv = [sys.executable, "-m", "shoal.cli.main", "controller", "--insecure"]
    argv += ["--db", f"sqlite:///{tmp_path / 'f.db'}", "--listen", "127.0.0.1:0"]
    base = {"SHOAL_HOME": str(shoal_home), "PATH": "/usr/bin:/bin"}
    r = subprocess.run(
        argv, env={**base, "SHOAL_CONTROLLER_DOWN_AFTR": "5"}, capture_output=True, text=True
    )
    assert r.returncode == 5, r.stderr
    assert "unknown controller setting SHOAL_CONTROLLER_DOWN_AFTR" in r.stderr
    (shoal_home / "config.toml").write_text("[controller]\nboot_timout = 60\n")
    r = subprocess.run(argv, env=base, capture_output=True, text=True)
    assert r.returncode == 5 and "unknown controller setting boot_timout" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_a_port_in_use_is_one_line_and_creates_nothing(shoal_home, tmp_path) -> None:
    import socket
    import subprocess
    import sys

    db = tmp_path / "fleet.db"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        for tls_flag in (["--insecure"], []):
            argv = [sys.executable, "-m", "shoal.cli.main", "controller", *tls_flag]
            argv += ["--db", f"sqlite:///{db}", "--listen", f"127.0.0.1:{port}"]
            env = {"SHOAL_HOME": str(shoal_home), "PATH": "/usr/bin:/bin"}
            r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
            assert r.returncode == 5, r.stderr
            errors = [x for x in r.stderr.splitlines() if not x.startswith("WARNING: --insecure")]
            assert len(errors) == 1 and "Traceback" not in r.stderr, r.stderr
            assert not db.exists()
    assert "cannot listen on 127.0.0.1" in r.stderr or "not found" in r.stderr


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_bad_heartbeat_bodies_are_4xx(start_controller) -> None:
    ctl = start_controller()
    with ctl.client("cn1") as agent:
        agent.post("/v1/register", json=GOOD).raise_for_status()
        for body in (b"[" * 100000, b'{"name": "cn1", "x": 1e400}', b'{"name": "cn1", "x": 1}'):
            r = agent.post(
                "/v1/heartbeat", content=body, headers={"content-type": "application/json"}
            )
            assert r.status_code == 422, (body[:40], r.status_code, r.text[:200])
        assert agent.post("/v1/heartbeat", json={"name": "cn1"}).json() == {"ok": True}
