"""Replacement is bounded: K in flight, P % of a pool per window, back-off per
host. A `command` provider script records every call it gets."""

from __future__ import annotations

import itertools
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

PROVIDER = textwrap.dedent(
    """
    import json, os, sys, time
    d = os.environ["BOUNDS_CLOUD_DIR"]
    req = json.load(sys.stdin)
    def log(what):
        with open(os.path.join(d, "calls.log"), "a") as f:
            f.write(f"{time.time():.3f} {what} {req['action']} {req['name']}\\n")
    log("start")
    while os.path.exists(os.path.join(d, "block")):
        time.sleep(0.05)
    fail = req["action"] == "create" and os.path.exists(os.path.join(d, "fail-create"))
    log("end")
    print(json.dumps({"ok": False, "error": "quota exceeded"} if fail else {"ok": True}))
    """
)


@pytest.fixture
def cloud(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    d = tmp_path / "cloud"
    d.mkdir()
    script = tmp_path / "provider.py"
    script.write_text(PROVIDER)
    monkeypatch.setenv("BOUNDS_CLOUD_DIR", str(d))
    return d, f"{sys.executable} {script}"


@pytest.fixture
def replacing(start_controller: Any, cloud: tuple[Path, str]) -> Any:
    """Start a controller that replaces, through the recording provider, hosts
    not registered within 1 s; the test gives the bounds."""

    def start(**bounds: Any) -> Any:
        base = {"boot_timeout": 1, "check_interval": 0.3, "policy": "replace"}
        cmd = {
            "provider": "command",
            "provider_command": cloud[1],
            "provider_env": '["BOUNDS_CLOUD_DIR"]',
        }
        return start_controller(**{**base, **cmd, **bounds})

    return start


def calls(d: Path) -> list[tuple[float, str, str, str]]:
    p = d / "calls.log"
    if not p.exists():
        return []
    out = []
    for line in p.read_text().splitlines():
        ts, what, action, name = line.split()
        out.append((float(ts), what, action, name))
    return out


def events(c: Any, kind: str) -> list[dict[str, Any]]:
    return [e for e in c.get("/v1/events").json() if e["kind"] == kind]


@pytest.mark.timeout(300)
def test_at_most_k_in_flight_and_the_watchdog_keeps_watching(replacing, cloud, until):
    d, _ = cloud
    (d / "block").write_text("")  # every provider call waits until this goes
    ctl = replacing(max_concurrent=1, max_pool_percent=100)
    with ctl.client() as c:
        c.post("/v1/nodes", json={"name": "cn1"}).raise_for_status()
        until(lambda: any(x[1:] == ("start", "delete", "cn1") for x in calls(d)))
        # cn1's replacement is stuck in the provider; the watchdog still runs
        c.post("/v1/nodes", json={"name": "cn2"}).raise_for_status()
        until(lambda: c.get("/v1/nodes/cn2").json()["state"] == "down")
        time.sleep(1.5)  # several passes: K = 1 keeps cn2 waiting
        assert c.get("/v1/nodes/cn2").json()["state"] == "down"
        assert not any(x[3] == "cn2" for x in calls(d))
        (d / "block").unlink()
        until(lambda: len(events(c, "replaced")) >= 2)
    # one operation at a time: no two delete..create spans overlap
    spans, begun = [], {}
    for ts, what, action, name in calls(d):
        if (what, action) == ("start", "delete"):
            begun[name] = ts
        elif (what, action) == ("end", "create") and name in begun:
            spans.append((begun.pop(name), ts))
    spans.sort()
    assert len(spans) >= 2
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans)), spans


@pytest.mark.timeout(300)
def test_at_most_p_percent_of_a_pool_per_window(replacing, cloud, until):
    d, _ = cloud
    ctl = replacing(
        max_concurrent=5,
        max_pool_percent=40,  # 40 % of 5 nodes: 2 per window
        window=3600,
    )
    with ctl.client() as c:
        for i in range(5):
            c.post("/v1/nodes", json={"name": f"cn{i}"}).raise_for_status()
        until(lambda: len({e["node"] for e in events(c, "replace-held")}) >= 3)
        # the 2 allowed replacements finish (each a provider process or two: on a
        # loaded machine that takes a while), then more passes change nothing
        until(lambda: len(events(c, "replaced")) >= 2)
        time.sleep(1.5)  # more passes, and the 2 replaced ones time out again
        assert len(events(c, "replaced")) == 2
        held = events(c, "replace-held")
        assert "2 replacements in the last 3600s (limit 40% of 5)" in held[-1]["reason"]
        # an event when a host starts waiting, not one per watchdog pass
        nodes = [e["node"] for e in held]
        assert len(nodes) == len(set(nodes)) >= 3, held
    assert sum(x[1:3] == ("start", "create") for x in calls(d)) == 2


@pytest.mark.timeout(300)
def test_a_failing_host_backs_off_exponentially(replacing, cloud, until):
    d, _ = cloud
    (d / "fail-create").write_text("")
    ctl = replacing(
        check_interval=0.2,
        max_pool_percent=100,
        window=0.1,  # the pool limit out of the way: only the back-off spaces retries
        backoff=1,
    )
    with ctl.client() as c:
        c.post("/v1/nodes", json={"name": "cn1"}).raise_for_status()

        def creates() -> list[float]:
            return [ts for ts, what, action, _ in calls(d) if (what, action) == ("end", "create")]

        until(lambda: len(creates()) >= 3, timeout=120)
        ev = c.get("/v1/events", params={"node": "cn1"}).json()
        assert any(
            "replacement failed" in e["reason"] and "quota exceeded" in e["reason"] for e in ev
        )
        m = c.get("/metrics").text
        line = next(x for x in m.splitlines() if x.startswith("shoal_replacement_failures_total "))
        assert float(line.split()[1]) >= 2
    starts = [ts for ts, what, action, _ in calls(d) if (what, action) == ("start", "delete")]
    ends = creates()
    # the n-th retry waits backoff * 2**(n-1) after the failure it follows
    assert starts[1] - ends[0] >= 1.0
    assert starts[2] - ends[1] >= 2.0
