"""The local provider: exactly one host per operation whatever the controller
went through, delete done only when the host is gone (issue 10, item 5), and
nothing of the controller's environment in what it starts (item 12)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa
from tests_fleet_util import agents_named, environ_of

from shoal.fleet.localhost import EX_HELD, holder
from shoal.fleet.providers import CommandProvider, LocalProvider, default_local_argv

SECRETS = {
    "SHOAL_CONTROLLER_STATUSPAGE_API_KEY": "statuspage-sekrit",
    "AWS_SECRET_ACCESS_KEY": "aws-sekrit",
}
HOST_ENV = {"PATH", "HOME", "LANG", "LC_ALL", "TZ", "USER", "LOGNAME", "SHELL", "PYTHONPATH"}


@pytest.mark.timeout(400)
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_resumed_create_finds_the_host_and_it_gets_a_clean_env(
    start_controller, db_url: str, monkeypatch: pytest.MonkeyPatch, until
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRETS["AWS_SECRET_ACCESS_KEY"])
    ctl = start_controller(
        boot_timeout=5,  # the first host never comes; its replacement has 5 s to register
        check_interval=0.5,
        policy="replace",
        provider="local",
        max_pool_percent=100,
        statuspage_api_key=SECRETS["SHOAL_CONTROLLER_STATUSPAGE_API_KEY"],
    )
    lock = ctl.env_home() / "local-provider" / "cn5.lock"
    with ctl.client() as c:
        c.post("/v1/nodes", json={"name": "cn5"}).raise_for_status()
        until(lambda: c.get("/v1/nodes/cn5").json()["state"] == "running", timeout=150)
        gen = c.get("/v1/nodes/cn5").json()["generation"]
    [pid] = agents_named("cn5", ctl.tls_dir)
    env = environ_of(pid)
    # The controller dies just after making the host: the operation's step is
    # still `creating` and the controller wrote no record of the host (the
    # state a kill -9 in that instant leaves; reconstructed here).
    ctl.kill(signal.SIGKILL)
    eng = sa.create_engine(db_url)
    with eng.begin() as conn:
        conn.execute(
            sa.text("UPDATE operations SET step = 'creating' WHERE key = :k"),
            {"k": f"replace:cn5:{gen}"},
        )
    eng.dispose()
    (lock.parent / "cn5.pid").unlink(missing_ok=True)
    ctl.env["SHOAL_CONTROLLER_BOOT_TIMEOUT"] = "3600"
    ctl.restart()
    with ctl.client() as c:
        until(
            lambda: any(
                e["kind"] == "reconcile" and "resuming 1" in e["reason"]
                for e in c.get("/v1/events").json()
            )
        )
        until(lambda: sum(e["kind"] == "replaced" for e in c.get("/v1/events").json()) >= gen + 1)
    assert agents_named("cn5", ctl.tls_dir) == [pid]  # the resumed create found it: one host
    h = holder(lock)
    assert h is not None and (h.pid, h.key) == (pid, f"replace:cn5:{gen}")
    # and the host has nothing of the controller's environment
    assert not set(SECRETS) & set(env), env
    assert all(v not in "\n".join(env.values()) for v in SECRETS.values())
    assert set(env) - HOST_ENV <= {"SHOAL_HOME", "SHOAL_METADATA"}, env
    assert env["SHOAL_HOME"] == env["HOME"] == str(lock.parent / "cn5")  # a home of its own


def test_delete_of_a_stopped_host_kills_it_and_waits(tmp_path: Path) -> None:
    from shoal.core import tls

    tls.init_ca(tmp_path / "tls")
    # a real agent (its controller is a closed loopback port: it keeps retrying)
    argv = default_local_argv("https://127.0.0.1:9", tmp_path / "tls")

    async def go() -> int:
        p = LocalProvider(tmp_path / "lp", argv, tmp_path / "tls")
        p.grace = 0.5
        await p.create("cn7", "default", "replace:cn7:1")
        assert await p.create("cn7", "default", "replace:cn7:1") == "cn7"  # idempotent
        for _ in range(100):
            if agents_named("cn7", tmp_path / "tls"):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(1)  # the agent is up and serving
        [pid] = agents_named("cn7", tmp_path / "tls")
        os.kill(pid, signal.SIGSTOP)  # hung: SIGTERM alone can do nothing
        await p.delete("cn7", "default", "replace:cn7:2")
        assert holder(p.lock("cn7")) is None
        assert (
            agents_named("cn7", tmp_path / "tls") == []
        )  # gone (or a zombie waiting for us), not stopped
        return pid

    asyncio.run(go())


def test_a_second_host_of_a_name_never_starts(tmp_path: Path) -> None:
    lock = tmp_path / "cn8.lock"
    launcher = [sys.executable, "-m", "shoal.fleet.localhost", str(lock)]
    first = subprocess.Popen([*launcher, "k1", "--", "sleep", "60"], start_new_session=True)
    try:
        for _ in range(500):
            h = holder(lock)
            if h is not None and h.key:
                break
            asyncio.run(asyncio.sleep(0.01))
        assert h is not None and (h.pid, h.key) == (first.pid, "k1")
        r = subprocess.run([*launcher, "k2", "--", "touch", str(tmp_path / "ran")], timeout=60)
        assert r.returncode == EX_HELD
        assert not (tmp_path / "ran").exists()
    finally:
        first.kill()
        first.wait()
    assert holder(lock) is None


def test_provider_programs_and_jobs_get_only_what_they_need(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, start_controller, until
) -> None:
    for k, v in SECRETS.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("CLOUD_PROFILE", "prod")
    dump = tmp_path / "dump.py"
    dump.write_text(
        textwrap.dedent(
            """
            import json, os, sys
            out = os.path.join(os.path.dirname(sys.argv[0]), "env-" + sys.argv[1] + ".json")
            json.dump(dict(os.environ), open(out, "w"))
            if sys.argv[1] in ("create", "delete"):
                print(json.dumps({"ok": True, "id": "i-1"}))
            else:
                print(json.dumps({"nodes": {"cn1": {"state": "PASS"}}}))
            """
        )
    )
    p = CommandProvider(f"{sys.executable} {dump}", env=None)
    asyncio.run(p.create("cn1", "default", "replace:cn1:1"))
    env = json.loads((tmp_path / "env-create.json").read_text())
    assert not set(SECRETS) & set(env) and "CLOUD_PROFILE" not in env

    from shoal.fleet.cleanenv import program_env

    p = CommandProvider(f"{sys.executable} {dump}", env=program_env(["CLOUD_PROFILE"]))
    asyncio.run(p.delete("cn1", "default", "replace:cn1:1"))
    env = json.loads((tmp_path / "env-delete.json").read_text())
    assert env["CLOUD_PROFILE"] == "prod" and not set(SECRETS) & set(env)
    # a job's fan-out, run by a real controller
    ctl = start_controller(executor=f"{sys.executable} {dump}")
    with ctl.client() as c:
        job = {"name": "j", "cron": "@every 1s", "nodes": "cn1", "action": "ping"}
        c.post("/v1/jobs", json=job).raise_for_status()
        until(lambda: (tmp_path / "env-ping.json").exists())
    env = json.loads((tmp_path / "env-ping.json").read_text())
    assert not set(SECRETS) & set(env), sorted(env)
    assert env["SHOAL_HOME"] == ctl.env["SHOAL_HOME"]  # the client settings it needs


@pytest.mark.timeout(400)
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_kill_9_while_creating_then_restart_makes_one_host(
    start_controller, db_url: str, until
) -> None:
    """The real thing: SIGKILL the controller the moment the operation's step is
    `creating` (polled from the database), restart it: one host, registered."""
    import sqlite3

    ctl = start_controller(
        boot_timeout=1, check_interval=0.2, policy="replace", provider="local", max_pool_percent=100
    )
    db = sqlite3.connect(db_url.removeprefix("sqlite:///"), timeout=30)
    with ctl.client() as c:
        c.post("/v1/nodes", json={"name": "cn6"}).raise_for_status()

    def creating() -> bool:
        try:
            row = db.execute("SELECT step FROM operations WHERE node = 'cn6'").fetchone()
        except sqlite3.OperationalError:  # locked for a moment by the controller
            return False
        return row is not None and row[0] == "creating"

    until(creating, timeout=120, interval=0.005)
    ctl.kill(signal.SIGKILL)
    db.close()
    ctl.env["SHOAL_CONTROLLER_BOOT_TIMEOUT"] = "3600"  # no new replacement after this one
    ctl.restart()
    with ctl.client() as c:
        until(lambda: c.get("/v1/nodes/cn6").json()["state"] == "running", timeout=150)
        assert c.get("/v1/nodes/cn6").json()["generation"] == 1
    assert len(agents_named("cn6", ctl.tls_dir)) == 1
