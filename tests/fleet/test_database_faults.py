"""A hung, refused or write-refusing PostgreSQL (issue 10, items 9 and 10): 503
within a bounded time, one line and exit 6 at start, /healthz never ok while
writes fail, and each outage logged once, not once per retry."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from tcpproxy import Proxy


@pytest.fixture
def proxy(postgres_url: str) -> Iterator[tuple[Proxy, str]]:
    """The test's database behind a proxy; the URL goes through the proxy."""
    with Proxy(("127.0.0.1", 5432)) as p:
        yield p, postgres_url.replace(":5432/", f":{p.port}/")


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_hung_then_refused_database_is_503_not_500(start_controller, proxy, until) -> None:
    p, via = proxy
    ctl = start_controller(db=via, db_timeout=1, flush_interval=0.2)
    with ctl.client("cn1") as agent, ctl.client() as op:
        agent.post("/v1/register", json={"name": "cn1", "facts": {}}).raise_for_status()
        p.hang()
        r = op.get("/healthz")
        assert r.status_code == 503, r.text
        assert "database unreachable" in r.json()["detail"]
        assert op.get("/v1/nodes").status_code == 503
        assert op.post("/v1/nodes/cn1/drain", json={}).status_code == 503
        p.refuse()
        r = op.get("/v1/nodes")
        assert r.status_code == 503, r.text
        assert "retry later" in r.json()["detail"]
        assert op.get("/healthz").status_code == 503
        assert agent.post("/v1/heartbeat", json={"name": "cn1"}).status_code == 200  # buffered
        p.forward()
        until(lambda: op.get("/healthz").status_code == 200)
        assert [n["name"] for n in op.get("/v1/nodes").json()] == ["cn1"]
    log = ctl.log.read_text()
    assert "Traceback" not in log, log[-3000:]
    assert log.count("database unreachable") == 1, log[-3000:]  # said once, not per retry


@pytest.mark.parametrize("fault", ["hang", "refuse"])
def test_a_bad_database_at_start_is_one_line_and_exit_6(
    postgres_url: str, shoal_home: Path, fault: str
) -> None:
    with Proxy(("127.0.0.1", 5432)) as p:
        getattr(p, fault)()
        via = postgres_url.replace(":5432/", f":{p.port}/")
        argv = [sys.executable, "-m", "shoal.cli.main", "controller", "--db", via]
        argv += ["--listen", "127.0.0.1:0", "--insecure"]
        env = {"SHOAL_HOME": str(shoal_home), "SHOAL_CONTROLLER_DB_TIMEOUT": "1", "PATH": "/bin"}
        r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 6, r.stderr
    lines = [x for x in r.stderr.splitlines() if "WARNING: --insecure" not in x]
    assert len(lines) == 1, r.stderr
    # a refusing proxy may close before or after the connection is taken: refused or reset
    want = (
        ("TimeoutError: timed out",)
        if fault == "hang"
        else ("ConnectionRefusedError", "ConnectionResetError")
    )
    assert lines[0].startswith(
        tuple("shoal: error: cannot open the database: " + w for w in want)
    ), r.stderr


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_writes_refused_is_503_and_logged_once(start_controller, db_url: str, until) -> None:
    name = db_url.rsplit("/", 1)[1]
    admin = db_url.rsplit("/", 1)[0] + "/test"

    def read_only(on: bool) -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            what = "SET default_transaction_read_only = on" if on else "RESET ALL"
            conn.execute(f'ALTER DATABASE "{name}" {what}')
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )

    ctl = start_controller(flush_interval=0.2)
    with ctl.client("cn1") as agent, ctl.client() as op:
        agent.post("/v1/register", json={"name": "cn1", "facts": {}}).raise_for_status()
        read_only(True)
        assert agent.post("/v1/heartbeat", json={"name": "cn1"}).status_code == 200
        r = until(lambda: (r := op.get("/healthz")).status_code == 503 and r)
        assert "database refuses writes" in r.json()["detail"], r.text
        assert "read-only" in r.json()["detail"]
        r = agent.post("/v1/register", json={"name": "cn1", "facts": {}})
        assert r.status_code == 503
        assert op.get("/v1/nodes").status_code == 200  # reads still work
        time.sleep(3)  # ~15 flush attempts at 0.2 s: every one fails
        assert op.get("/healthz").status_code == 503
        read_only(False)
        until(lambda: op.get("/healthz").status_code == 200)
        until(lambda: op.get("/healthz").json()["pending_heartbeats"] == 0)
        ev = [e for e in op.get("/v1/events").json() if e["kind"] == "database"]
        assert len(ev) == 1 and "accepts writes again" in ev[0]["reason"]
    log = ctl.log.read_text()
    assert log.count("database refuses writes") == 1, log[-3000:]
    assert log.count("database accepts writes again") == 1, log[-3000:]
    assert log.count("reachable again") <= 1, log[-3000:]  # no flapping between the two
    assert "Traceback" not in log, log[-3000:]


@pytest.mark.root
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_full_disk_is_logged_once_and_healthz_says_so(
    start_controller, tmp_path: Path, until
) -> None:
    """SQLite on a 16 MiB tmpfs of the controller's own (a mount namespace), filled
    up while it runs: writes fail, /healthz says so, the log says it once."""
    import errno
    import os
    import shutil

    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare(1) to give the controller a small disk")
    d = tmp_path / "small-disk"
    d.mkdir()
    mount = f'mount -t tmpfs -o size=16m tmpfs {d} && exec "$@"'
    ctl = start_controller(
        db=f"sqlite:///{d / 'fleet.db'}",
        wrap=["unshare", "--mount", "sh", "-c", mount, "sh"],
        flush_interval=0.2,
    )
    filler = Path(f"/proc/{ctl.proc.pid}/root{d}/filler")  # the controller's view of d
    with ctl.client("cn1") as agent, ctl.client() as op:
        agent.post("/v1/register", json={"name": "cn1", "facts": {}}).raise_for_status()
        with filler.open("wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError as e:
                assert e.errno == errno.ENOSPC
        for _ in range(15):  # 3 s of heartbeats, ~15 flushes: every one fails
            assert agent.post("/v1/heartbeat", json={"name": "cn1"}).status_code == 200
            time.sleep(0.2)
        r = op.get("/healthz")
        assert r.status_code == 503 and "refuses writes" in r.json()["detail"], r.text
        assert "full" in r.json()["detail"]
        filler.unlink()
        until(lambda: op.get("/healthz").status_code == 200)
        until(lambda: op.get("/healthz").json()["pending_heartbeats"] == 0)
    log = ctl.log.read_text()
    assert log.count("database refuses writes") == 1, log[-3000:]
    assert log.count("database accepts writes again") == 1, log[-3000:]
    assert "reachable again" not in log and "Traceback" not in log, log[-3000:]
