"""Cron jobs through the real controller: validation, runs, skip, coalescing, persistence.

The executor is the CLI contract (`shoal run --json ...`); until fan-out is
merged, SHOAL_CONTROLLER_EXECUTOR points at a small program that prints that
JSON, so the controller really spawns a process and parses its answer.
"""

from __future__ import annotations

import sys
import textwrap
import time
from pathlib import Path

FAKE_SHOAL = textwrap.dedent(
    """
    import json, sys, time
    args = sys.argv[1:]
    nodes = args[args.index("-w") + 1]
    open(sys.argv[0] + ".calls", "a").write(" ".join(args) + "\\n")
    if "--" in args and "slow" in args[args.index("--") + 1:]:
        time.sleep(3)
    state = "failed" if "false" in args else "ok"
    print(json.dumps({"nodes": {n: {"state": state, "exit_code": 0} for n in nodes.split(",")},
                      "summary": {}}))
    """
)


def fake(tmp_path: Path) -> str:
    p = tmp_path / "fake_shoal.py"
    p.write_text(FAKE_SHOAL)
    return f"{sys.executable} {p}"


def test_invalid_cron_names_the_field(start_controller, tmp_path: Path) -> None:
    ctl = start_controller(executor=fake(tmp_path))
    with ctl.client() as c:
        r = c.post(
            "/v1/jobs",
            json={"name": "bad", "cron": "0 0 25 * * *", "nodes": "cn1", "command": "date"},
        )
        assert r.status_code == 422
        assert "hour field '25'" in r.json()["detail"]
        assert c.get("/v1/jobs").json() == []


def test_job_runs_skips_while_running_and_history_persists(
    start_controller, tmp_path: Path, until
) -> None:
    ctl = start_controller(executor=fake(tmp_path))
    with ctl.client() as c:
        r = c.post(
            "/v1/jobs",
            json={
                "name": "scrub",
                "cron": "@every 1s",
                "nodes": "cn1,cn2",
                "command": "slow scrub",
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
        calls = (tmp_path / "fake_shoal.py.calls").read_text().splitlines()
        assert calls[0] == "run --json -w cn1,cn2 -- slow scrub"
    ctl.restart()
    with ctl.client() as c:
        assert len(c.get("/v1/jobs/scrub/runs").json()) >= len(runs)
        assert [j["name"] for j in c.get("/v1/jobs").json()] == ["scrub"]
        assert c.delete("/v1/jobs/scrub").json() == {"ok": True}
        assert c.get("/v1/jobs").json() == []


def test_missed_runs_are_coalesced_into_one(start_controller, tmp_path: Path, until) -> None:
    ctl = start_controller(executor=fake(tmp_path))
    with ctl.client() as c:
        c.post(
            "/v1/jobs", json={"name": "p", "cron": "@every 1s", "nodes": "cn1", "action": "ping"}
        ).raise_for_status()
        until(lambda: c.get("/v1/jobs/p/runs").json())
    ctl.kill()
    time.sleep(4)  # fire times pass while the controller is down
    n_before = len((tmp_path / "fake_shoal.py.calls").read_text().splitlines())
    ctl.restart()
    with ctl.client() as c:
        # wait for the coalesced run to finish: its executor call is written by then
        until(
            lambda: any(
                x["coalesced"] >= 2 and x["status"] != "running"
                for x in c.get("/v1/jobs/p/runs").json()
            )
        )
        runs = c.get("/v1/jobs/p/runs").json()
        co = next(x for x in runs if x["coalesced"] >= 2)
        # the missed fire times became this one run, not one run each
        later = [x for x in runs if x["id"] > co["id"]]
        assert all(x["coalesced"] <= 1 for x in later)
    calls = (tmp_path / "fake_shoal.py.calls").read_text().splitlines()
    assert calls[n_before] == "ping --json -w cn1"
