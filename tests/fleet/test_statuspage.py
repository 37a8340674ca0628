from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from statuspage_fake import FakeStatuspage

from shoal.errors import ConfigError, ServiceError
from shoal.fleet.statuspage import StatuspagePusher, read_key

KEY = "sk-test-0123456789abcdef"


async def test_push_retries_429_and_5xx_and_never_duplicates(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    with FakeStatuspage("pg1", KEY, failures=[429, 503]) as sp:
        p = StatuspagePusher(sp.url, "pg1", KEY, backoff=0.01)
        assert await p.push("m1", 1767225600.7, 42) is True
        assert await p.push("m1", 1767225600.2, 43) is False  # same second: no duplicate
        assert await p.push("m1", 1767225610, 1.5) is True
        assert sp.points == [("m1", 1767225600, 42.0), ("m1", 1767225610, 1.5)]
        assert sp.requests == 4  # 429, 503, ok, ok
    assert KEY not in caplog.text and KEY not in repr(p)


async def test_push_gives_up_and_refuses_bad_key() -> None:
    with FakeStatuspage("pg1", KEY, failures=[500, 500, 500]) as sp:
        p = StatuspagePusher(sp.url, "pg1", KEY, retries=2, backoff=0.01)
        with pytest.raises(ServiceError, match="500 after 2 retries"):
            await p.push("m1", 1, 1)
        assert sp.points == []
        bad = StatuspagePusher(sp.url, "pg1", "wrong", backoff=0.01)
        with pytest.raises(ServiceError, match="401") as e:
            await bad.push("m1", 2, 1)
        assert "wrong" not in str(e.value)


def test_key_from_env_or_file(tmp_path: Path) -> None:
    f = tmp_path / "key"
    f.write_text(KEY + "\n")
    assert read_key("", f) == KEY
    assert read_key("envkey", f) == "envkey"
    with pytest.raises(ConfigError, match="no statuspage API key"):
        read_key("", None)


def test_the_metrics_job_pushes_the_registry_snapshot(start_controller, until) -> None:
    """The `metrics` action of a real controller: the mapped snapshot keys
    reach Statuspage, an unknown one is reported in the run, not pushed."""
    with FakeStatuspage("pg1", KEY) as sp:
        ctl = start_controller(
            statuspage_url=sp.url,
            statuspage_page_id="pg1",
            statuspage_api_key=KEY,
            statuspage_metrics="running=m-run,heartbeats=m-hb,nope=m-x",
        )
        with ctl.client() as c:
            job = {"name": "sp", "cron": "@every 1s", "nodes": "", "action": "metrics"}
            c.post("/v1/jobs", json=job).raise_for_status()
            runs = until(lambda: c.get("/v1/jobs/sp/runs").json() or None, timeout=60)
            until(lambda: c.get("/v1/jobs/sp/runs").json()[-1]["status"] != "running", timeout=60)
            run = c.get("/v1/jobs/sp/runs").json()[-1]
        assert runs
        assert run["detail"]["nodes"] == {
            "running": "ok",
            "heartbeats": "ok",
            "nope": "failed: unknown metric",
        }
        assert run["status"] == "failed"  # one metric could not be pushed
        pushed = {m: v for m, _, v in sp.points}
        assert pushed["m-run"] == 0.0 and "m-x" not in pushed and "m-hb" in pushed
    assert KEY not in ctl.log.read_text()
