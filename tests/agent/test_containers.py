"""faas containers on a real agent process over mutual TLS (NodeService):
warm workers in sandboxes, their errors, limits and ends, and who may call.
Root with cgroups (the sandboxes) is needed, as in test_sandbox."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import grpc
import psutil
import pytest
from agentproc import Agent, Agents, wait_for

from shoal.agent.cgroups import Host
from shoal.core import tls
from shoal.core.wire.shoal.v1 import faas_pb2 as fpb
from shoal.tree.channels import dial_node_service

needs_cgroups = pytest.mark.skipif(
    os.geteuid() != 0 or Host.detect().version == 0, reason="containers need root and cgroups"
)
pytestmark = needs_cgroups
T = TypeVar("T")
MiB = 2**20

FNS = r"""
import os, time

COUNT = 0

def count(event):
    global COUNT
    COUNT += 1
    return {"count": COUNT, "event": event}

def kind(event):
    if isinstance(event, bytes):
        return event
    return {"type": type(event).__name__, "event": event}

def flaky(event):
    print("about to look at", event)
    if event == "fail":
        raise ValueError("bad event " + event)
    if event == "long":
        raise ValueError("x" * 5_000_000)
    return "fine"

def noisy(event):
    os.write(1, b"\0\0\0\x05not a frame")  # the descriptor a frame would go to, were it fd 1
    os.write(2, b"\0\0\0\x05nor this")
    print("hi")
    return "clean"

def quit(event):
    os._exit(3)

async def later(event):
    return "awaited " + event

def env(event):
    return {"tmpdir": os.environ["TMPDIR"], "cwd": os.getcwd(), "keys": sorted(os.environ)}

def spin(event):
    return sum(i * i for i in range(event))

def sleepy(event):
    time.sleep(600)

def hog(event):
    blob = b"x" * (event["mb"] * 2**20)
    return len(blob)

def meet(event):
    # a barrier: returns only once the other call has started too
    open(os.path.join(event["dir"], event["me"]), "w").close()
    while not os.path.exists(os.path.join(event["dir"], event["other"])):
        time.sleep(0.01)
    return "met " + event["other"]
"""


@pytest.fixture
def code(tmp_path: Path) -> Path:
    d = tmp_path / "code"
    d.mkdir()
    (d / "fns.py").write_text(FNS)
    return d


def _procs(code_dir: Path) -> list[psutil.Process]:
    """Live processes working in code_dir: a container's worker and its children."""
    out = []
    for p in psutil.process_iter(["cwd", "status"]):
        if p.info["cwd"] == str(code_dir) and p.info["status"] != psutil.STATUS_ZOMBIE:
            out.append(p)
    return out


def _sandboxes(agent: Agent) -> list[Path]:
    """The agent's live sandboxes (cgroups named after its process)."""
    base = Host.detect().bases["memory"]
    return [d for d in base.iterdir() if d.name.startswith(f"{agent.proc.pid}.")]


@asynccontextmanager
async def _node(agents: Agents, agent: Agent, as_name: str = tls.CLIENT_NAME) -> AsyncIterator[Any]:
    ident = tls.Identity.in_dir(agents.home / "tls", as_name)
    ch, stub = dial_node_service(agent.name, agent.address, ident)
    async with ch:
        yield stub


def _run(agents: Agents, agent: Agent, fn: Callable[[Any], Awaitable[T]], **kw: str) -> T:
    async def go() -> T:
        async with _node(agents, agent, **kw) as stub:
            return await fn(stub)

    return asyncio.run(go())


def _meta(code: Path | None, handler: str, **kw: Any) -> fpb.FunctionMeta:
    kw.setdefault("memory_in_bytes", 128 * MiB)
    kw.setdefault("timeout_in_ms", 60_000)
    return fpb.FunctionMeta(function_name=handler, handler=handler, code_dir=str(code or ""), **kw)


async def _create(stub: Any, meta: fpb.FunctionMeta) -> str:
    reply = await stub.CreateContainer(
        fpb.CreateContainerRequest(request_id="r", name=meta.function_name, function_meta=meta),
        timeout=60,
    )
    return str(reply.container_id)


async def _invoke(
    stub: Any, cid: str, event: bytes
) -> tuple[fpb.InvokeHeader, bytes, fpb.InvokeFooter]:
    header, body, footer = None, b"", None
    req = fpb.InvokeFunctionRequest(request_id="r", container_id=cid, event=event)
    async for part in stub.InvokeFunction(req, timeout=120):
        kind = part.WhichOneof("part")
        if kind == "header":
            header = part.header
        elif kind == "body":
            body += part.body
        else:
            footer = part.footer
    assert header is not None and footer is not None
    return header, body, footer


async def _code_of(aw: Awaitable[Any]) -> tuple[grpc.StatusCode, str]:
    try:
        await aw
    except grpc.aio.AioRpcError as e:
        return e.code(), e.details() or ""
    raise AssertionError("the call succeeded")


async def _until(cond: Callable[[], object], what: str, limit: float = 30.0) -> None:
    """wait_for inside the event loop (a bound against hangs, not a timing check)."""
    for _ in range(int(limit / 0.05)):
        if cond():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


async def _gone(stub: Any, cid: str) -> tuple[grpc.StatusCode, str]:
    return await _code_of(_invoke(stub, cid, b"{}"))


def test_a_python_container_stays_warm(agents: Agents, code: Path) -> None:
    a = agents.start("n1", spares=0)

    async def go(stub: Any) -> list[Any]:
        cid = await _create(stub, _meta(code, "fns:count"))
        assert cid.startswith("n1-")
        return [await _invoke(stub, cid, b'"e"') for _ in range(3)]

    calls = _run(agents, a, go)
    assert [json.loads(body)["count"] for _, body, _ in calls] == [1, 2, 3]
    assert all(f.error_code == "" and f.duration_in_nanos > 0 for _, _, f in calls)
    assert all(h.max_mem_usage_in_bytes > 0 for h, _, _ in calls)
    assert re.search(r"container n1-\w+ of fns:count ready: cold start \d+ ms", a.log_text())


def test_a_container_has_its_limits_its_own_scratch_and_a_clean_env(
    agents: Agents, code: Path
) -> None:
    a = agents.start("n1", spares=0)

    async def go(stub: Any) -> Any:
        cid = await _create(stub, _meta(code, "fns:env", memory_in_bytes=256 * MiB))
        return await _invoke(stub, cid, b"")

    _, body, _ = _run(agents, a, go)
    seen = json.loads(body)
    scratch = agents.home / "agent" / "containers" / "n1"
    assert Path(seen["tmpdir"]).parent == scratch and seen["cwd"] == str(code)
    assert "SHOAL_HOME" not in seen["keys"] and "SHOAL_NODE" in seen["keys"]
    bases = Host.detect().bases
    (box,) = _sandboxes(a)
    assert int((box / "memory.limit_in_bytes").read_text()) == 256 * MiB
    quota = int((bases["cpu"] / box.name / "cpu.cfs_quota_us").read_text())
    assert quota == int(0.67 * 0.25 * 100_000)  # 0.67 cores per GiB
    assert int((bases["pids"] / box.name / "pids.max").read_text()) > 0


def test_what_a_function_writes_to_fd_1_and_2_cannot_corrupt_a_frame(
    agents: Agents, code: Path
) -> None:
    a = agents.start("n1", spares=0)

    async def go(stub: Any) -> Any:
        cid = await _create(stub, _meta(code, "fns:noisy"))
        return await _invoke(stub, cid, b""), await _invoke(stub, cid, b"")

    for h, body, f in _run(agents, a, go):
        assert (body, f.error_code, h.function_log) == (b"clean", "", "hi\n")


def test_a_worker_that_exits_ends_its_calls_container_gone(agents: Agents, code: Path) -> None:
    a = agents.start("n1", spares=0)

    async def go(stub: Any) -> Any:
        cid = await _create(stub, _meta(code, "fns:quit"))
        _, _, f = await _invoke(stub, cid, b"")
        return f, _procs(code), await _gone(stub, cid)

    f, procs, gone = _run(agents, a, go)
    assert (f.error_code, f.error_message) == ("CONTAINER_GONE", "the worker exited (status 3)")
    assert procs == [] and gone[0] == grpc.StatusCode.NOT_FOUND


def test_an_async_handler_is_awaited(agents: Agents, code: Path) -> None:
    a = agents.start("n1", spares=0)

    async def go(stub: Any) -> Any:
        return await _invoke(stub, await _create(stub, _meta(code, "fns:later")), b'"it"')

    assert _run(agents, a, go)[1] == b"awaited it"


def test_under_insecure_anyone_may_call(agents: Agents, code: Path) -> None:
    a = agents.start("n1", spares=0, insecure=True)

    async def go() -> Any:
        ch, stub = dial_node_service(a.name, a.address, None)
        async with ch:
            return await _invoke(stub, await _create(stub, _meta(code, "fns:count")), b"1")

    assert json.loads(asyncio.run(go())[1]) == {"count": 1, "event": 1}


def test_a_command_container_gets_the_event_on_stdin(agents: Agents, code: Path) -> None:
    a = agents.start("n1", spares=0)

    async def go(stub: Any) -> Any:
        cid = await _create(stub, _meta(code, "tr a-z A-Z; echo noted >&2"))
        return await _invoke(stub, cid, b"hello"), await _invoke(stub, cid, b"again")

    (h1, b1, f1), (_, b2, _) = _run(agents, a, go)
    assert (b1, b2, f1.error_code) == (b"HELLO", b"AGAIN", "")
    assert h1.function_log == "noted\n"


def test_json_in_json_out_and_bytes_as_they_are(agents: Agents, code: Path) -> None:
    a = agents.start("n1", spares=0)

    async def go(stub: Any) -> Any:
        cid = await _create(stub, _meta(code, "fns:kind"))
        return [await _invoke(stub, cid, e) for e in (b'{"a": [1, 2]}', b"\xff\x00raw", b"7")]

    (_, obj, _), (_, raw, _), (_, num, _) = _run(agents, a, go)
    assert json.loads(obj) == {"type": "dict", "event": {"a": [1, 2]}}
    assert raw == b"\xff\x00raw"
    assert json.loads(num) == {"type": "int", "event": 7}


def test_a_function_exception_is_function_error_and_the_next_call_works(
    agents: Agents, code: Path
) -> None:
    a = agents.start("n1", spares=0)

    async def go(stub: Any) -> Any:
        cid = await _create(stub, _meta(code, "fns:flaky"))
        calls = [await _invoke(stub, cid, e) for e in (b'"fail"', b'"long"', b'"ok"')]
        return calls[0], calls[2], calls[1][2]

    (h, _, f), (h2, body, f2), long = _run(agents, a, go)
    assert long.error_code == "FUNCTION_ERROR" and len(long.error_message) < 1100
    assert (f.error_code, f.error_message) == ("FUNCTION_ERROR", "ValueError: bad event fail")
    assert "about to look at fail" in h.function_log and "Traceback" in h.function_log
    assert (body, f2.error_code, h2.function_log) == (b"fine", "", "about to look at ok\n")


def test_a_body_larger_than_a_grpc_message_arrives_whole(agents: Agents, code: Path) -> None:
    a = agents.start("n1", spares=0)

    async def go(stub: Any) -> Any:
        cid = await _create(stub, _meta(code, "head -c 6000000 /dev/zero"))
        return await _invoke(stub, cid, b"")

    _, body, f = _run(agents, a, go)
    assert (len(body), set(body), f.error_code) == (6_000_000, {0}, "")


def test_a_failing_command_is_function_error_with_its_status(agents: Agents, code: Path) -> None:
    a = agents.start("n1", spares=0)

    async def go(stub: Any) -> Any:
        cid = await _create(stub, _meta(code, "echo partial; exit 3"))
        return await _invoke(stub, cid, b"")

    _, body, f = _run(agents, a, go)
    assert (body, f.error_code, f.error_message) == (
        b"partial\n",
        "FUNCTION_ERROR",
        "exit status 3",
    )


@pytest.mark.parametrize("handler", ["fns:sleepy", "sleep 600"])
def test_a_call_over_its_time_limit_is_timeout_and_leaves_nothing(
    agents: Agents, code: Path, handler: str
) -> None:
    a = agents.start("n1", spares=0)

    async def go(stub: Any) -> Any:
        cid = await _create(stub, _meta(code, handler, timeout_in_ms=1000))
        assert _procs(code) and _sandboxes(a)
        _, _, f = await _invoke(stub, cid, b"{}")
        return f, _procs(code), _sandboxes(a), await _gone(stub, cid)

    f, procs, boxes, gone = _run(agents, a, go)
    assert (f.error_code, f.error_message) == ("TIMEOUT", "ran over its time limit of 1000 ms")
    assert (procs, boxes) == ([], [])  # already when the footer came
    assert gone[0] == grpc.StatusCode.NOT_FOUND


def test_an_allocation_over_the_memory_limit_is_oom(agents: Agents, code: Path) -> None:
    a = agents.start("n1", spares=0)

    async def go(stub: Any) -> Any:
        cid = await _create(stub, _meta(code, "fns:hog", memory_in_bytes=128 * MiB))
        h, _, f = await _invoke(stub, cid, b'{"mb": 400}')
        return h, f, _procs(code), await _gone(stub, cid)

    h, f, procs, gone = _run(agents, a, go)
    assert f.error_code == "OOM"
    m = re.fullmatch(r"out of memory: limit 128\.0 MiB, peak ([\d.]+) MiB", f.error_message)
    assert m is not None and float(m.group(1)) >= 120, f.error_message
    assert h.max_mem_usage_in_bytes >= 120 * MiB
    assert procs == [] and gone[0] == grpc.StatusCode.NOT_FOUND


def test_an_unknown_container_is_not_found(agents: Agents) -> None:
    a = agents.start("n1", spares=0)

    async def go(stub: Any) -> Any:
        rm = stub.RemoveContainer(fpb.RemoveContainerRequest(container_id="n1-nope"))
        return await _gone(stub, "n1-nope"), await _code_of(rm)

    for code, details in _run(agents, a, go):
        assert (code, details) == (grpc.StatusCode.NOT_FOUND, "no container 'n1-nope' on n1")
    assert "Traceback" not in a.log_text()


def test_a_node_certificate_is_refused(agents: Agents, code: Path) -> None:
    a = agents.start("n1", spares=0)
    agents.start("n2")  # its certificate has the node role

    async def go(stub: Any) -> Any:
        create = _create(stub, _meta(code, "fns:count"))
        return await _code_of(create), await _code_of(stub.GetStats(fpb.GetStatsRequest()))

    for code_, details in _run(agents, a, go, as_name="n2"):
        assert code_ == grpc.StatusCode.PERMISSION_DENIED
        assert "n2 is a node certificate" in details
    assert "refused a NodeService request from n2" in a.log_text()
    assert _procs(code) == []


def test_bad_requests_get_one_line_errors(agents: Agents, code: Path, tmp_path: Path) -> None:
    a = agents.start("n1", spares=0)
    total = psutil.virtual_memory().total
    cases = [
        (_meta(code, "fns:count", memory_in_bytes=total + MiB), grpc.StatusCode.RESOURCE_EXHAUSTED,
         f"node n1 has {total / MiB:.0f} MiB"),
        (_meta(code, "  "), grpc.StatusCode.INVALID_ARGUMENT, "handler is empty"),
        (_meta(code, "fns:count", memory_in_bytes=0), grpc.StatusCode.INVALID_ARGUMENT,
         "memory_in_bytes 0: must be positive"),
        (_meta(tmp_path / "absent", "fns:count"), grpc.StatusCode.INVALID_ARGUMENT,
         "not a directory on n1"),
        (_meta(code, "fns:count", concurrency=-1), grpc.StatusCode.INVALID_ARGUMENT,
         "concurrency -1"),
    ]  # fmt: skip

    async def go(stub: Any) -> Any:
        return [await _code_of(_create(stub, meta)) for meta, _, _ in cases]

    for (code_, details), (_, want, text) in zip(_run(agents, a, go), cases, strict=True):
        assert code_ == want and text in details and "\n" not in details
    assert "Traceback" not in a.log_text()


def test_an_import_error_is_a_clear_error_and_leaves_nothing(agents: Agents, code: Path) -> None:
    a = agents.start("n1", spares=0)

    async def go(stub: Any) -> Any:
        return [
            await _code_of(_create(stub, _meta(code, h)))
            for h in ("nosuchmodule:fn", "fns:nope", "fns:COUNT")
        ]

    got = _run(agents, a, go)
    assert all(c == grpc.StatusCode.FAILED_PRECONDITION for c, _ in got)
    assert got[0][1].endswith("ModuleNotFoundError: No module named 'nosuchmodule'")
    assert got[1][1].endswith("module fns has no callable nope")
    assert got[2][1].endswith("module fns has no callable COUNT")
    assert _procs(code) == [] and _sandboxes(a) == []
    assert list((agents.home / "agent" / "containers" / "n1").iterdir()) == []


def test_remove_container_kills_its_worker_and_ends_its_calls(agents: Agents, code: Path) -> None:
    a = agents.start("n1", spares=0)

    async def go(stub: Any) -> Any:
        cid = await _create(stub, _meta(code, "fns:sleepy"))
        call = asyncio.create_task(_invoke(stub, cid, b"{}"))
        for _ in range(600):  # a bound against hangs
            stats = await stub.GetStats(fpb.GetStatsRequest())
            if stats.container_stats_list[0].in_flight:
                break
            await asyncio.sleep(0.05)
        assert stats.container_stats_list[0].in_flight == 1
        await stub.RemoveContainer(fpb.RemoveContainerRequest(container_id=cid))
        after = _procs(code), _sandboxes(a)
        _, _, f = await call
        stats = await stub.GetStats(fpb.GetStatsRequest())
        return after, f, stats, await _gone(stub, cid)

    after, f, stats, gone = _run(agents, a, go)
    assert after == ([], [])
    assert f.error_code == "CONTAINER_GONE"
    assert list(stats.container_stats_list) == [] and gone[0] == grpc.StatusCode.NOT_FOUND


def test_get_stats_reports_the_node_and_each_container(agents: Agents, code: Path) -> None:
    a = agents.start("n1", spares=0)

    async def go(stub: Any) -> Any:
        cid = await _create(stub, _meta(code, "fns:spin", memory_in_bytes=256 * MiB))
        await stub.GetStats(fpb.GetStatsRequest())
        await _invoke(stub, cid, b"300000")  # CPU time since that GetStats
        return await stub.GetStats(fpb.GetStatsRequest())

    s = _run(agents, a, go)
    n = s.node_stats
    assert n.total_memory_in_bytes == psutil.virtual_memory().total
    assert n.memory_usage_in_bytes + n.available_memory_in_bytes == n.total_memory_in_bytes
    assert 0 <= n.cpu_usage_pct <= 100
    (c,) = s.container_stats_list
    assert (c.total_memory_in_bytes, c.function_name, c.in_flight) == (256 * MiB, "fns:spin", 0)
    assert 0 < c.memory_usage_in_bytes < 256 * MiB and c.cpu_usage_pct > 0


def test_agent_sigterm_leaves_no_worker_and_ends_calls_container_gone(
    agents: Agents, code: Path
) -> None:
    a = agents.start("n1", spares=0)

    async def go(stub: Any) -> Any:
        await _create(stub, _meta(code, "fns:count"))
        cid = await _create(stub, _meta(code, "sleep 600"))
        call = asyncio.create_task(_invoke(stub, cid, b""))
        await _until(lambda: "sleep" in [p.name() for p in _procs(code)], "the call running")
        await asyncio.to_thread(a.kill, signal.SIGTERM)
        return (await call)[2]

    f = _run(agents, a, go)
    assert (f.error_code, f.error_message) == ("CONTAINER_GONE", "agent n1 stopping")
    assert _procs(code) == []
    assert "2 container(s) removed at stop" in a.log_text()


def test_a_crashed_agents_containers_are_swept_at_restart(agents: Agents, code: Path) -> None:
    a = agents.start("n1", spares=0)

    async def go(stub: Any) -> None:
        # the call's sleep leaves the worker's process group: only the sweep finds it
        cid = await _create(stub, _meta(code, "setsid sleep 600"))
        call = asyncio.create_task(_invoke(stub, cid, b""))
        await _until(lambda: "sleep" in [p.name() for p in _procs(code)], "the sleep running")
        a.kill()  # SIGKILL: the agent cleans nothing up itself
        await _code_of(call)  # the call fails, whichever way the connection's end is reported

    _run(agents, a, go)
    wait_for(lambda: [p.name() for p in _procs(code)] == ["sleep"], "only the escaped sleep left")
    scratch = agents.home / "agent" / "containers" / "n1"
    assert len(list(scratch.iterdir())) == 1
    b = agents.start("n1", spares=0)
    # the count may include what other agents on this machine left
    wait_for(lambda: _procs(code) == [], "the escaped sleep killed by the sweep")
    assert list(scratch.iterdir()) == []
    assert re.search(
        r"removed \d+ sandbox\(es\) of a previous agent \([1-9]\d* process", b.log_text()
    )


def test_concurrency_two_runs_two_calls_at_once(agents: Agents, code: Path, tmp_path: Path) -> None:
    a = agents.start("n1", spares=0)
    d = str(tmp_path)

    def ev(me: str, other: str) -> bytes:
        return json.dumps({"dir": d, "me": me, "other": other}).encode()

    async def go(stub: Any) -> Any:
        cid = await _create(stub, _meta(code, "fns:meet", concurrency=2))
        # each call waits for the other's file: both end only if both run at once
        return await asyncio.gather(
            _invoke(stub, cid, ev("a", "b")), _invoke(stub, cid, ev("b", "a"))
        )

    (_, b1, f1), (_, b2, f2) = _run(agents, a, go)
    assert (b1, b2, f1.error_code, f2.error_code) == (b"met b", b"met a", "", "")


def test_a_call_beyond_the_concurrency_is_refused_busy(
    agents: Agents, code: Path, tmp_path: Path
) -> None:
    a = agents.start("n1", spares=0)
    d = str(tmp_path)

    async def go(stub: Any) -> Any:
        cid = await _create(stub, _meta(code, "fns:meet"))
        first = asyncio.create_task(
            _invoke(stub, cid, json.dumps({"dir": d, "me": "a", "other": "go"}).encode())
        )
        await _until((tmp_path / "a").exists, "the first call running")
        busy = await _gone(stub, cid)
        (tmp_path / "go").touch()
        return busy, await first

    (code_, details), (_, body, f) = _run(agents, a, go)
    assert code_ == grpc.StatusCode.RESOURCE_EXHAUSTED and details.startswith("container n1-")
    assert "busy" in details and (body, f.error_code) == (b"met go", "")


def test_a_worker_killed_by_its_memory_limit_at_start_says_so(agents: Agents, code: Path) -> None:
    a = agents.start("n1", spares=0)

    async def go(stub: Any) -> Any:
        return await _code_of(_create(stub, _meta(code, "fns:count", memory_in_bytes=4 * MiB)))

    code_, details = _run(agents, a, go)
    assert code_ == grpc.StatusCode.FAILED_PRECONDITION
    assert "out of memory: limit 4.0 MiB" in details
    assert _procs(code) == [] and _sandboxes(a) == []


def test_a_time_out_ends_the_other_calls_in_flight_container_gone(
    agents: Agents, code: Path
) -> None:
    a = agents.start("n1", spares=0)

    async def go(stub: Any) -> Any:
        # 3 s: time enough for the second call to reach the agent on a loaded machine
        cid = await _create(stub, _meta(code, "fns:sleepy", timeout_in_ms=3000, concurrency=2))
        calls = await asyncio.gather(_invoke(stub, cid, b"{}"), _invoke(stub, cid, b"{}"))
        return [f.error_code for _, _, f in calls], _procs(code)

    codes, procs = _run(agents, a, go)
    assert sorted(codes) == ["CONTAINER_GONE", "TIMEOUT"] and procs == []


def test_a_command_killed_by_the_memory_limit_is_oom(agents: Agents, code: Path) -> None:
    a = agents.start("n1", spares=0)
    hog = f"{sys.executable} -c 'x = b\"x\" * (400 << 20)'"

    async def go(stub: Any) -> Any:
        cid = await _create(stub, _meta(code, hog, memory_in_bytes=128 * MiB))
        _, _, f = await _invoke(stub, cid, b"")
        return f, _procs(code), await _gone(stub, cid)

    f, procs, gone = _run(agents, a, go)
    assert f.error_code == "OOM" and f.error_message.startswith("out of memory: limit 128.0 MiB")
    assert procs == [] and gone[0] == grpc.StatusCode.NOT_FOUND


def test_a_create_its_caller_gives_up_on_leaves_nothing(agents: Agents, code: Path) -> None:
    a = agents.start("n1", spares=0)
    (code / "slow.py").write_text("import time\ntime.sleep(600)\ndef f(e):\n    return e\n")

    async def go(stub: Any) -> Any:
        meta = _meta(code, "slow:f")
        req = fpb.CreateContainerRequest(name="slow", function_meta=meta)
        return await _code_of(stub.CreateContainer(req, timeout=2))

    assert _run(agents, a, go)[0] == grpc.StatusCode.DEADLINE_EXCEEDED
    wait_for(lambda: _procs(code) == [] and _sandboxes(a) == [], "the half-started container gone")
    assert "Traceback" not in a.log_text()
