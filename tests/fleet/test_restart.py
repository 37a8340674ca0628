"""A controller restart after a stop longer than down_after marks nothing
down: silence is measured from the start (issue 10, item 6)."""

from __future__ import annotations

import signal
import threading
import time

import httpx


def test_restart_after_a_long_stop_keeps_healthy_nodes(start_controller, until) -> None:
    ctl = start_controller(suspect_after=2, down_after=3, check_interval=0.3, flush_interval=0.2)
    stop = threading.Event()

    def beat(c: httpx.Client) -> None:  # a live node: heartbeats whenever it can
        while not stop.is_set():
            try:
                c.post("/v1/heartbeat", json={"name": "cn1"}, timeout=2)
            except httpx.HTTPError:
                pass
            stop.wait(0.3)

    with ctl.client("cn1") as agent, ctl.client() as op:
        agent.post("/v1/register", json={"name": "cn1", "facts": {}}).raise_for_status()
        t = threading.Thread(target=beat, args=(agent,), daemon=True)
        t.start()
        try:
            until(lambda: op.get("/healthz").json()["pending_heartbeats"] == 0)
            ctl.kill(signal.SIGKILL)
            time.sleep(6)  # twice down_after with nobody listening
            ctl.restart()
            # many watchdog passes while the node's heartbeats resume
            first = op.get("/v1/events").json()[-1]["id"]
            time.sleep(3)
            assert op.get("/v1/nodes/cn1").json()["state"] == "running"
            later = [e for e in op.get("/v1/events").json() if e["id"] > first]
            assert [e for e in later if e["kind"] == "state"] == [], later
        finally:
            stop.set()
            t.join(10)
    # and a node that really stays silent is still marked down, counted from the start
    ctl.kill(signal.SIGKILL)
    time.sleep(4)
    ctl.restart()
    with ctl.client() as op:
        ev = until(
            lambda: [e for e in op.get("/v1/events").json() if e["to"] == "down"], timeout=60
        )
        assert ev[-1]["node"] == "cn1" and ev[-1]["from"] in ("running", "suspect")
