"""The scheduler's nodes from the fleet controller's pool: a real controller
process (SQLite, mutual TLS), real agents that register with it, and the
scheduler reserving the nodes it reports running. A node the operator drains
is given back (its containers removed) and the next call runs on another node,
whose code the scheduler sent when it reserved it; the controller going away
does not stop the functions."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from agentproc import Agents, free_port

from shoal.agent.cgroups import Host
from shoal.core import tls
from shoal.core.config import Settings
from shoal.errors import ServiceError
from shoal.faas.adaptive import Adaptive
from shoal.faas.client import Client
from shoal.faas.policy import FixedTTL
from shoal.faas.scheduler import Options
from shoal.faas.service import Running, start_scheduler

from .test_scheduler_agents import functions_file

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or Host.detect().version == 0, reason="containers need root and cgroups"
)


def _http(home: Path) -> httpx.Client:
    ident = tls.Identity.in_dir(home / "tls", tls.CLIENT_NAME)
    return httpx.Client(verify=tls.client_context(ident), timeout=10, trust_env=False)


@pytest.fixture
def controller(shoal_home: Path, tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    d = shoal_home / "tls"
    tls.init_ca(d)
    tls.issue(d, tls.CLIENT_NAME, role=tls.OPERATOR)
    tls.issue(d, "controller", sans=["127.0.0.1"], role=tls.CONTROLLER)
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    env = {**os.environ, "SHOAL_METADATA": "off"}
    log = (tmp_path / "controller.log").open("wb")
    argv = [sys.executable, "-m", "shoal.cli.main", "controller", "--listen", f"127.0.0.1:{port}"]
    argv += ["--db", f"sqlite:///{tmp_path / 'fleet.db'}"]
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        with _http(shoal_home) as c:
            for _ in range(600):
                try:
                    if c.get(f"{url}/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert proc.poll() is None, (tmp_path / "controller.log").read_text()
                time.sleep(0.1)
        yield url, proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _running(home: Path, url: str) -> set[str]:
    with _http(home) as c:
        rows = c.get(f"{url}/v1/nodes", params={"state": "running"}).json()
    return {r["name"] for r in rows}


async def _until(cond: object, what: str, limit: float = 60.0) -> None:
    """Poll until cond() holds (a bound against hangs, not a timing check)."""
    deadline = time.monotonic() + limit
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"never happened: {what}"
        await asyncio.sleep(0.1)


@pytest.fixture
async def fleet(
    agents: Agents, shoal_home: Path, tmp_path: Path, controller: tuple[str, object]
) -> AsyncIterator[tuple[Running, Client, str]]:
    url, _ = controller
    for n, pool in (("n1", "fn"), ("n2", "fn"), ("n3", "batch")):
        agents.start(n, controller=url, pool=pool, env={"SHOAL_METADATA": "off"})
    agents.inventory()
    await _until(lambda: len(_running(shoal_home, url)) == 3, "the nodes registered")
    r = await start_scheduler(
        None,
        FixedTTL(600.0),  # containers stay: what is tested is where they are
        settings=Settings.load(controller_url=url),
        node_memory=1024 << 20,
        functions=functions_file(tmp_path, memory_mb=128),
        code_root=str(tmp_path / "code-root"),
        options=Options(nodes=1, max_nodes=3, poll_s=0.3),
        fleet_pool="fn",
    )
    c = Client(f"127.0.0.1:{r.served.port}", Settings.load())
    try:
        yield r, c, url
    finally:
        await c.close()
        await r.stop()


async def test_a_drained_node_is_given_back_and_calls_move_on(
    fleet: tuple[Running, Client, str], shoal_home: Path, controller: tuple[str, object]
) -> None:
    r, c, url = fleet
    assert set(r.scheduler.nodes) == {"n1"}  # one reserved at the start, as asked
    assert r.scheduler.pool.running == {"n1", "n2"}  # type: ignore[attr-defined]  # not n3's pool
    first = await c.invoke("count", b"{}")
    assert first.ok and first.node == "n1", first
    # on n1's warm container, longer than the pool takes to see a drain (its
    # list of the controller's nodes is at most 5 s old)
    busy = asyncio.create_task(c.invoke("count", b'{"s": 8}'))
    fn = r.scheduler.known["count"]
    await _until(lambda: fn.in_flight == 1, "the slow call acquired its container")
    with _http(shoal_home) as h:
        h.post(f"{url}/v1/nodes/n1/drain", json={"reason": "maintenance"}).raise_for_status()
    await _until(lambda: r.scheduler.nodes["n1"].draining, "n1 draining")
    assert not busy.done() and "n1" in r.scheduler.nodes  # held while its call runs
    slow = await busy
    assert slow.ok and slow.node == "n1" and not slow.cold, slow  # the drain let it finish
    await _until(lambda: "n1" not in r.scheduler.nodes, "n1 given back after its last call")
    assert r.scheduler.stats.removed >= 1  # its container went with it
    moved = await c.invoke("count", b'{"x": 2}')
    assert moved.ok and moved.cold and moved.node == "n2", moved
    assert json.loads(moved.body)["calls"] == 1  # code reached n2 when it was reserved
    assert [d.id for d in r.scheduler.pool.usage()] == ["n2"]
    crowd = await asyncio.gather(*(c.invoke("count", b'{"s": 0.5}') for _ in range(3)))
    assert all(i.ok and i.node == "n2" for i in crowd), crowd  # never n1 again, nor n3

    _, proc = controller
    proc.send_signal(signal.SIGKILL)  # type: ignore[attr-defined]
    await asyncio.sleep(1.0)  # a few polls of a controller that is gone
    warm = await c.invoke("count", b"{}")
    assert warm.ok and not warm.cold and warm.node == "n2", warm
    assert set(r.scheduler.nodes) == {"n2"}  # a controller outage drains nothing


async def test_an_unreachable_controller_is_a_clear_error(shoal_home: Path) -> None:
    d = shoal_home / "tls"
    tls.init_ca(d)
    tls.issue(d, tls.CLIENT_NAME, role=tls.OPERATOR)
    url = f"https://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(ServiceError, match="unreachable"):
        await start_scheduler(None, Adaptive(), settings=Settings.load(controller_url=url))
