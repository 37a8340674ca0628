"""Spare faas workers (agent/spares.py) on a real agent process: a container
made from a spare is its function's, with its own limits, scratch and
environment, as one started for it; spares end with the agent."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path
from typing import Any

import grpc
import psutil
import pytest
from agentproc import Agents, wait_for
from test_containers import FNS, _code_of, _create, _invoke, _meta, _run, _sandboxes, _until

from shoal.agent.cgroups import Host

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or Host.detect().version == 0, reason="containers need root and cgroups"
)
MiB = 2**20

MORE = r"""
def where(event):
    return {"cgroup": open("/proc/self/cgroup").read().strip(), "pid": os.getpid()}
"""


@pytest.fixture
def code(tmp_path: Path) -> Path:
    d = tmp_path / "code"
    d.mkdir()
    (d / "fns.py").write_text(FNS + MORE)
    return d


def _spares(agents: Agents) -> list[psutil.Process]:
    """The agents' waiting spares."""
    return [p for p in agents.workers(spares=True) if p not in agents.workers()]


def _memory_max(proc_cgroup: str) -> int:
    """The memory limit of the cgroup a /proc/PID/cgroup text names."""
    for line in proc_cgroup.splitlines():
        _, ctrls, path = line.split(":", 2)
        if ctrls == "memory":  # v1
            return int(Path("/sys/fs/cgroup/memory", path.lstrip("/"), "memory.limit_in_bytes")
                       .read_text())  # fmt: skip
        if ctrls == "" and Host.detect().version == 2:
            return int(Path("/sys/fs/cgroup", path.lstrip("/"), "memory.max").read_text())
    raise AssertionError(f"no memory cgroup in {proc_cgroup!r}")


def test_a_container_from_a_spare_is_its_functions_own(agents: Agents, code: Path) -> None:
    a = agents.start("n1")

    async def go(stub: Any) -> tuple[Any, ...]:
        first = await _create(stub, _meta(code, "fns:env"))
        _, env_first, _ = await _invoke(stub, first, b"{}")
        await _until(lambda: len(_spares(agents)) == 2, "two spares waiting")
        spare_pids = {p.pid for p in _spares(agents)}
        second = await _create(stub, _meta(code, "fns:env", memory_in_bytes=256 * MiB))
        _, env_second, _ = await _invoke(stub, second, b"{}")
        third = await _create(stub, _meta(code, "fns:where", memory_in_bytes=192 * MiB))
        _, place, _ = await _invoke(stub, third, b"{}")
        return second, env_first, env_second, json.loads(place), spare_pids

    second, env_first, env_second, place, spare_pids = _run(agents, a, go)
    assert f"container {second} of fns:env ready" in a.log_text()
    assert "from a spare" in a.log_text()
    e1, e2 = json.loads(env_first), json.loads(env_second)
    assert e2["cwd"] == str(code) and e2["keys"] == e1["keys"]
    assert e2["tmpdir"] != e1["tmpdir"]  # a scratch of its own
    assert "SHOAL_SPARE" not in e2["keys"]
    assert place["pid"] in spare_pids  # it was one of the waiting spares
    assert _memory_max(place["cgroup"]) == 192 * MiB  # the function's limit, not the spare's


def test_a_function_in_a_spare_is_oom_at_its_own_limit(agents: Agents, code: Path) -> None:
    a = agents.start("n1", spares=1)

    async def go(stub: Any) -> Any:
        await _create(stub, _meta(code, "fns:count"))
        await _until(lambda: len(_spares(agents)) == 1, "a spare waiting")
        cid = await _create(stub, _meta(code, "fns:hog", memory_in_bytes=160 * MiB))
        # more than a waiting spare may hold, less than the function's limit
        ok = await _invoke(stub, cid, json.dumps({"mb": 80}).encode())
        over = await _invoke(stub, cid, json.dumps({"mb": 300}).encode())
        return ok, over

    ok, over = _run(agents, a, go)
    assert ok[2].error_code == "" and json.loads(ok[1]) == 80 * MiB
    assert over[2].error_code == "OOM" and "limit 160.0 MiB" in over[2].error_message
    assert "from a spare" in a.log_text()


def test_an_import_error_in_a_spare_is_one_line_and_leaves_only_spares(
    agents: Agents, code: Path
) -> None:
    a = agents.start("n1", spares=1)

    async def go(stub: Any) -> tuple[grpc.StatusCode, str]:
        await _create(stub, _meta(code, "fns:count"))
        await _until(lambda: len(_spares(agents)) == 1, "a spare waiting")
        return await _code_of(_create(stub, _meta(code, "nosuch:fn")))

    code_, why = _run(agents, a, go)
    assert code_ == grpc.StatusCode.FAILED_PRECONDITION
    assert why.endswith("ModuleNotFoundError: No module named 'nosuch'") and "\n" not in why
    # the count container, and the spare that replaced the one used
    wait_for(lambda: len(_spares(agents)) == 1, "the spare replaced")
    wait_for(lambda: len(_sandboxes(a)) == 2, "the failed container's sandbox removed")


def test_agent_stop_leaves_no_spare(agents: Agents, code: Path) -> None:
    a = agents.start("n1")

    async def go(stub: Any) -> list[int]:
        await _create(stub, _meta(code, "fns:count"))
        await _until(lambda: len(_spares(agents)) == 2, "two spares waiting")
        return [p.pid for p in _spares(agents)]

    pids = _run(agents, a, go)
    a.proc.send_signal(signal.SIGTERM)
    assert a.proc.wait(timeout=60) == 0
    wait_for(lambda: not any(psutil.pid_exists(p) for p in pids), "the spares gone")
    assert _sandboxes(a) == []


def test_faas_spares_below_zero_is_one_line(agents: Agents) -> None:
    from agentproc import shoal

    r = shoal(
        "agent", "--name", "x", "--listen", "127.0.0.1:0", "--insecure", "--faas-spares", "-1"
    )
    assert r.returncode != 0 and "--faas-spares -1: must not be negative" in r.stderr
    assert "Traceback" not in r.stderr


def test_a_burst_that_outruns_the_spares_makes_the_agent_keep_more(
    agents: Agents, code: Path
) -> None:
    a = agents.start("n1", spares=1)

    async def go(stub: Any) -> list[str]:
        await _create(stub, _meta(code, "fns:count"))
        await _until(lambda: len(_spares(agents)) == 1, "a spare waiting")
        # three at once: one takes the spare, two find none
        made = await asyncio.gather(*(_create(stub, _meta(code, "fns:count")) for _ in range(3)))
        await _until(lambda: len(_spares(agents)) == 3, "three spares waiting")
        return list(made)

    made = _run(agents, a, go)
    assert len(set(made)) == 3
    assert a.log_text().count("from a spare") == 1


def test_a_scheduler_polling_the_node_makes_it_keep_spares_before_its_first_start(
    agents: Agents,
) -> None:
    from shoal.core.wire.shoal.v1 import faas_pb2 as fpb

    a = agents.start("n1")

    async def go(stub: Any) -> int:
        before = len(_spares(agents))
        await stub.GetStats(fpb.GetStatsRequest())
        await _until(lambda: len(_spares(agents)) == 2, "two spares waiting")
        return before

    assert _run(agents, a, go) == 0
