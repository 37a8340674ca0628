"""The local exec part, in process: output, exit codes, env, cwd, time-out."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import psutil
from agentproc import marked

from shoal.agent.tasks import run_exec
from shoal.core.wire import pb


async def _run(command: str, **kw: object) -> tuple[bytes, bytes, pb.Result]:
    events: list[pb.TaskEvent] = []

    async def emit(ev: pb.TaskEvent) -> None:
        events.append(ev)

    await run_exec("n1", pb.ExecTask(command=command, **kw), emit)  # type: ignore[arg-type]
    out = b"".join(e.output.data for e in events if e.HasField("output") and e.output.stream == 0)
    err = b"".join(e.output.data for e in events if e.HasField("output") and e.output.stream == 1)
    results = [e.result for e in events if e.HasField("result")]
    assert len(results) == 1 and events[-1].HasField("result")
    assert all(e.node == "n1" for e in events)
    return out, err, results[0]


async def test_output_in_order_and_exit_ok() -> None:
    out, err, res = await _run("seq 1 20000; echo oops >&2")
    assert out == b"".join(b"%d\n" % i for i in range(1, 20001))
    assert err == b"oops\n"
    assert res.state == pb.STATE_OK and res.exit_code == 0
    assert res.timing.end_ns >= res.timing.start_ns > 0


async def test_exit_status_and_signal() -> None:
    _, _, res = await _run("exit 7")
    assert res.state == pb.STATE_FAILED and res.exit_code == 7
    _, _, res = await _run("kill -TERM $$")
    assert res.state == pb.STATE_FAILED and res.exit_code == -15


async def test_env_cwd_and_no_stdin(tmp_path: Path) -> None:
    out, _, res = await _run(
        "echo $FOO $SHOAL_NODE; pwd; cat", env={"FOO": "bar"}, cwd=str(tmp_path)
    )
    assert out == f"bar n1\n{tmp_path}\n".encode()
    assert res.state == pb.STATE_OK


async def test_timeout_kills_the_whole_group() -> None:
    marker = f"shoal-test-{uuid.uuid4().hex}"
    # a background grandchild in the same group must die too
    _, _, res = await _run(
        f"sh -c 'sleep 600; echo {marker}' & sleep 600; echo {marker}", timeout=0.5
    )
    assert res.state == pb.STATE_TIMEOUT
    await asyncio.sleep(0.2)
    assert marked(marker) == []


async def test_cancellation_kills_the_command() -> None:
    marker = f"shoal-test-{uuid.uuid4().hex}"

    async def emit(ev: pb.TaskEvent) -> None:
        pass

    task = asyncio.create_task(
        run_exec("n1", pb.ExecTask(command=f"sleep 600; echo {marker}"), emit)
    )

    def started() -> bool:  # our own descendants only: cheap on a busy machine
        for p in psutil.Process().children(recursive=True):
            try:
                if marker in " ".join(p.cmdline()):
                    return True
            except psutil.Error:
                continue
        return False

    while not started():
        await asyncio.sleep(0.05)  # bounded by the test time-out
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert marked(marker) == []
