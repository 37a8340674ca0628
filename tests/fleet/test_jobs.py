"""Cron jobs through the real controller and real fan-out: validation, runs,
skip, coalescing, persistence.

Jobs run through the fan-out API in a process of their own (fleet/jobproc.py)
against a local cluster of real agents that shares the test's SHOAL_HOME, so a
job's record is what the nodes really answered.
"""

from __future__ import annotations

import time


def test_invalid_cron_names_the_field(start_controller) -> None:
    ctl = start_controller()
    with ctl.client() as c:
        r = c.post(
            "/v1/jobs",
            json={"name": "bad", "cron": "0 0 25 * * *", "nodes": "cn1", "command": "date"},
        )
        assert r.status_code == 400
        assert "hour field '25'" in r.json()["detail"]
        assert c.get("/v1/jobs").json() == []


def test_a_cron_that_can_never_fire_is_refused(start_controller) -> None:
    ctl = start_controller()
    with ctl.client() as c:
        for cron in ("0 0 0 30 2 *", "0 0 0 31 4 *", "@every 1ms"):
            job = {"name": "feb30", "cron": cron, "nodes": "cn1", "command": "true"}
            r = c.post("/v1/jobs", json=job)
            assert r.status_code == 400, (cron, r.status_code, r.text)
            assert "never fire" in r.json()["detail"] or "at least 1s" in r.json()["detail"]
        assert c.get("/v1/jobs").json() == []
        ok = {"name": "leap", "cron": "0 0 0 29 2 *", "nodes": "cn1", "command": "true"}
        assert c.post("/v1/jobs", json=ok).json()["next"].endswith("-02-29T00:00:00+00:00")


def test_one_broken_job_never_stops_the_others(start_controller, cluster, db_url, until) -> None:
    """A job stored before the check existed (written here straight into the
    database) is set aside, once; the other jobs run and `jobs list` works."""
    import subprocess
    import sys

    import sqlalchemy as sa

    cluster(["cn1"])
    ctl = start_controller()
    url = db_url.replace("postgresql://", "postgresql+psycopg://")
    eng = sa.create_engine(url)
    with eng.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO jobs (name, cron, nodes, command, action, created_at)"
                " VALUES ('feb30', '0 0 0 30 2 *', 'cn1', 'true', 'command', :t)"
            ),
            {"t": "2026-01-01 00:00:00"},
        )
    eng.dispose()
    with ctl.client() as c:
        c.post(
            "/v1/jobs", json={"name": "p", "cron": "@every 1s", "nodes": "cn1", "action": "ping"}
        ).raise_for_status()
        until(
            lambda: len([x for x in c.get("/v1/jobs/p/runs").json() if x["status"] == "ok"]) >= 2,
            timeout=90,
        )
        jobs = {j["name"]: j for j in c.get("/v1/jobs").json()}
        assert jobs["feb30"]["next"] is None and "never fire" in jobs["feb30"]["error"]
        assert jobs["p"]["next"] and jobs["p"]["error"] is None
        broken = [e for e in c.get("/v1/events").json() if e["kind"] == "job-broken"]
        assert len(broken) == 1 and broken[0]["reason"].startswith("feb30: ")
        assert c.get("/v1/jobs/feb30/runs").json() == []
    env = {**ctl.env, "SHOAL_CONTROLLER_URL": ctl.url}
    r = subprocess.run(
        [sys.executable, "-m", "shoal.cli.main", "jobs", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert "feb30" in r.stdout and "never" in r.stdout
    assert ctl.log.read_text().count("job feb30 set aside") == 1


def test_job_runs_skips_while_running_and_history_persists(
    start_controller, cluster, until
) -> None:
    cluster(["cn1", "cn2"])
    ctl = start_controller()
    with ctl.client() as c:
        r = c.post(
            "/v1/jobs",
            json={
                "name": "scrub",
                "cron": "@every 1s",
                "nodes": "cn[1-2]",
                # quotes reach the node's shell intact; the run outlasts the period
                "command": "sleep 2; test \"$(echo 'a b')\" = 'a b'",
            },
        )
        assert r.status_code == 200, r.text
        until(
            lambda: {x["status"] for x in c.get("/v1/jobs/scrub/runs").json()} >= {"ok", "skipped"},
            timeout=90,
        )
        runs = c.get("/v1/jobs/scrub/runs").json()
        ok = next(x for x in runs if x["status"] == "ok")
        assert ok["detail"]["nodes"] == {"cn1": "ok", "cn2": "ok"}
        skipped = next(x for x in runs if x["status"] == "skipped")
        assert skipped["detail"]["reason"] == "previous run still running"
    ctl.restart()
    with ctl.client() as c:
        assert len(c.get("/v1/jobs/scrub/runs").json()) >= len(runs)
        assert [j["name"] for j in c.get("/v1/jobs").json()] == ["scrub"]
        assert c.delete("/v1/jobs/scrub").json() == {"ok": True}
        assert c.get("/v1/jobs").json() == []


def test_job_records_each_nodes_state(start_controller, cluster, until) -> None:
    """A command failing on one node, and a node whose agent is dead."""
    lc = cluster(["cn1", "cn2", "cn3"])
    lc.kill("cn3")
    ctl = start_controller()
    with ctl.client() as c:
        c.post(
            "/v1/jobs",
            json={
                "name": "check",
                "cron": "@every 1s",
                "nodes": "cn[1-3]",
                "command": '[ "$SHOAL_NODE" != cn2 ]',  # the agent names its node
            },
        ).raise_for_status()
        done = until(
            lambda: [
                x for x in c.get("/v1/jobs/check/runs").json() if x["status"] in ("ok", "failed")
            ],
            timeout=90,
        )
        assert done[0]["status"] == "failed"
        assert done[0]["detail"]["nodes"] == {
            "cn1": "ok",
            "cn2": "failed",
            "cn3": "unreachable",
        }


def test_missed_runs_are_coalesced_into_one(start_controller, cluster, until) -> None:
    cluster(["cn1"])
    ctl = start_controller()
    with ctl.client() as c:
        c.post(
            "/v1/jobs", json={"name": "p", "cron": "@every 1s", "nodes": "cn1", "action": "ping"}
        ).raise_for_status()
        until(lambda: c.get("/v1/jobs/p/runs").json())
    ctl.kill()
    time.sleep(4)  # fire times pass while the controller is down
    ctl.restart()
    with ctl.client() as c:
        until(
            lambda: any(
                x["coalesced"] >= 2 and x["status"] != "running"
                for x in c.get("/v1/jobs/p/runs").json()
            )
        )
        runs = c.get("/v1/jobs/p/runs").json()
        co = next(x for x in runs if x["coalesced"] >= 2)
        # the missed fire times became this one run, not one run each, and it ran
        assert co["status"] == "ok"
        assert co["detail"]["nodes"] == {"cn1": "ok"}
        later = [x for x in runs if x["id"] > co["id"]]
        assert all(x["coalesced"] <= 1 for x in later)


def test_cli_job_runs_the_command_as_shoal_run_would(start_controller, cluster, until) -> None:
    """`shoal jobs add ... -- 'CMD'` stores the words joined as `shoal run` joins
    them, so the nodes' shell sees the same command line."""
    import subprocess
    import sys

    cluster(["cn1", "cn2"])
    ctl = start_controller()
    env = {**ctl.env, "SHOAL_CONTROLLER_URL": ctl.url}
    argv = [sys.executable, "-m", "shoal.cli.main", "jobs", "add", "--name", "j"]
    argv += ["--cron", "@every 1s", "-w", "cn[1-2]", "--", 'test "$SHOAL_NODE" != cn2']
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    with ctl.client() as c:
        assert c.get("/v1/jobs").json()[0]["command"] == 'test "$SHOAL_NODE" != cn2'
        done = until(
            lambda: [x for x in c.get("/v1/jobs/j/runs").json() if x["status"] in ("ok", "failed")],
            timeout=90,
        )
        assert done[0]["detail"]["nodes"] == {"cn1": "ok", "cn2": "failed"}


def test_jobs_leave_drained_nodes_alone(start_controller, cluster, until) -> None:
    ctl = start_controller(flush_interval=0.2)
    cluster(["cn1", "cn2"], controller=ctl.url)
    with ctl.client() as c:
        until(lambda: [n["state"] for n in c.get("/v1/nodes").json()] == ["running"] * 2)
        c.post("/v1/nodes/cn2/drain", json={"reason": "disk swap"}).raise_for_status()
        c.post(
            "/v1/jobs",
            json={"name": "j", "cron": "@every 1s", "nodes": "cn[1-2]", "command": "true"},
        ).raise_for_status()
        done = until(
            lambda: [x for x in c.get("/v1/jobs/j/runs").json() if x["status"] in ("ok", "failed")],
            timeout=90,
        )
        assert done[0]["status"] == "ok"
        assert done[0]["detail"]["nodes"] == {"cn1": "ok"}


def test_a_bad_node_set_is_refused_before_it_is_stored(start_controller) -> None:
    import subprocess
    import sys

    ctl = start_controller()
    env = {**ctl.env, "SHOAL_CONTROLLER_URL": ctl.url}

    def shoal(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "shoal.cli.main", *args]
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)

    for bad in ("node[1-", "@nosuchgroup", "node[3-1]"):
        r = shoal("jobs", "add", "--name", "j", "--cron", "@every 1s", "-w", bad, "--", "true")
        assert r.returncode == 2, (bad, r.stderr)
        assert r.stderr.count("\n") == 1, r.stderr
        assert "node set" in r.stderr or "unknown group @nosuchgroup" in r.stderr, r.stderr
    with ctl.client() as c:
        assert c.get("/v1/jobs").json() == []
    r = shoal("jobs", "history", "nosuch")
    assert r.returncode == 2 and "no job nosuch" in r.stderr
