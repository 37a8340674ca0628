"""The local part of a task on one node: exec, ping, facts (agent/facts.py).

Exec runs `/bin/sh -c CMD` in its own session (so its process group is the
unit we kill), streams stdout and stderr in chunks through `emit` (which
blocks when the consumer is slow, so a command printing gigabytes is paused
by its full pipe instead of filling memory), and on time-out, cancellation or
agent shutdown kills the whole group. Live groups are tracked so shutdown can
kill them even if a handler is never resumed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from pathlib import Path

from shoal.agent.cgroups import Host
from shoal.agent.facts import collect_facts
from shoal.agent.sandbox import Request, Sandbox, SandboxError
from shoal.core.wire import pb
from shoal.tree.relay import Emit
from shoal.tree.subtree import result_event

CHUNK = 64 * 1024
DRAIN = 0.5  # seconds a finished command's leftovers may still write to its pipes
TIMEOUT_STATUS = 124  # the exit status a timed-out command reports
FEEDING: set[asyncio.Task[None]] = set()  # stdin writers, held until done
LIVE_GROUPS: set[int] = set()
LIVE_BOXES: set[Sandbox] = set()


def kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def kill_all() -> None:
    for pgid in list(LIVE_GROUPS):
        kill_group(pgid)
    for box in list(LIVE_BOXES):
        box.kill_now()


DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def clean_env(node: str, extra: dict[str, str]) -> dict[str, str]:
    """What sshd gives a session, never the agent's own environment (which may
    hold a controller's or a cloud's secrets): PATH, HOME, USER, LOGNAME,
    SHELL, LANG, then SHOAL_NODE and what the task asks for."""
    import pwd

    try:
        pw = pwd.getpwuid(os.getuid())
        home, user, shell = pw.pw_dir, pw.pw_name, pw.pw_shell or "/bin/sh"
    except KeyError:  # a uid without a passwd entry (containers)
        home, user, shell = "/", str(os.getuid()), "/bin/sh"
    env = {
        "PATH": os.environ.get("PATH") or DEFAULT_PATH,
        "HOME": home,
        "USER": user,
        "LOGNAME": user,
        "SHELL": shell,
        "LANG": os.environ.get("LANG") or "C.UTF-8",
        # the name the client addressed, which on shared hosts (a local cluster
        # without root, several agents per machine) the hostname is not
        "SHOAL_NODE": node,
    }
    env.update(extra)
    return env


def request_of(task: pb.ExecTask) -> Request:
    r = task.resources
    return Request(r.cpus, r.mems, r.memory, r.cpu_quota, r.pids, r.scratch)


async def _drop_scratch(host: Host, scratch: Path | None) -> int:
    """Bytes freed."""
    if scratch is None:
        return 0
    # a big tree takes a while: off the event loop
    _, size = await asyncio.shield(asyncio.to_thread(host.scratches.remove, scratch))
    return size


class _Watched(asyncio.subprocess.SubprocessStreamProtocol):
    """Says when the process exits, whoever still holds its pipes."""

    def __init__(self, limit: int, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=limit, loop=loop)
        self.exited = asyncio.Event()

    def process_exited(self) -> None:
        super().process_exited()
        self.exited.set()


async def _spawn(
    argv: list[str], *, cwd: str | None, env: dict[str, str], stdin: bytes = b""
) -> tuple[asyncio.subprocess.Process, asyncio.Event]:
    """The command's process and an event set when it exits; stdin is written
    to it in the background (a command that never reads it is no reason to wait)."""
    loop = asyncio.get_running_loop()
    protocol: _Watched | None = None

    def factory() -> _Watched:
        nonlocal protocol
        protocol = _Watched(2**16, loop)
        return protocol

    transport, _ = await loop.subprocess_exec(
        factory,
        *argv,
        stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
        env=env,
        start_new_session=True,
    )
    assert protocol is not None
    proc = asyncio.subprocess.Process(transport, protocol, loop)
    if stdin:
        task = asyncio.create_task(_feed(proc, stdin))
        FEEDING.add(task)
        task.add_done_callback(FEEDING.discard)
    return proc, protocol.exited


async def _feed(proc: asyncio.subprocess.Process, data: bytes) -> None:
    assert proc.stdin is not None
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        proc.stdin.write(data)
        await proc.stdin.drain()
    proc.stdin.close()


async def run_exec(node: str, task: pb.ExecTask, emit: Emit, host: Host | None = None) -> None:
    start = time.time_ns()
    env = clean_env(node, dict(task.env))
    req = request_of(task)
    host = host or Host.none("no host")
    scratch = None
    try:
        if req.scratch:
            scratch = host.scratches.make(req.scratch)
            env["TMPDIR"] = env["SHOAL_SCRATCH"] = str(scratch)
        box = host.sandbox(req)
    except SandboxError as e:
        await _drop_scratch(host, scratch)
        await emit(result_event(node, pb.STATE_REFUSED, f"refused: {e.message}", start, 0))
        return
    command = task.command.replace("%h", node)  # as clush: the node's name
    argv = box.argv(command) if box is not None else ["/bin/sh", "-c", command]
    try:
        proc, exited = await _spawn(argv, cwd=task.cwd or None, env=env, stdin=task.stdin)
    except OSError as e:
        if box is not None:
            box.remove()
        await _drop_scratch(host, scratch)
        await emit(result_event(node, pb.STATE_FAILED, f"cannot start: {e}", start, 127))
        return
    LIVE_GROUPS.add(proc.pid)
    if box is not None:
        LIVE_BOXES.add(box)

    async def pump(stream: asyncio.StreamReader | None, kind: int) -> None:
        assert stream is not None
        offset = 0
        while chunk := await stream.read(CHUNK):
            out = pb.Output(stream=kind, data=chunk, offset=offset)  # type: ignore[arg-type]
            offset += len(chunk)
            await emit(pb.TaskEvent(node=node, output=out))

    async def complete() -> None:
        # Finished when the main process exits. What it left in the background
        # holding our pipes is given DRAIN seconds to pass on what it wrote,
        # then killed with the command's sandbox (its group when there is none).
        pumps = asyncio.gather(
            pump(proc.stdout, pb.Output.STDOUT), pump(proc.stderr, pb.Output.STDERR)
        )
        try:
            await exited.wait()  # proc.wait() would wait for the pipes too
            try:
                await asyncio.wait_for(asyncio.shield(pumps), DRAIN)
            except TimeoutError:
                kill_group(proc.pid)
                if box is not None:
                    await box.kill()
                await pumps
        finally:
            pumps.cancel()

    timed_out = False
    try:
        try:
            await asyncio.wait_for(complete(), task.timeout if task.timeout > 0 else None)
        except TimeoutError:
            timed_out = True
    finally:
        # Time-out, cancellation (caller gone) or shutdown: nothing survives;
        # in a sandbox not even what escaped the group (setsid, double forks).
        stop = timed_out or proc.returncode is None
        if stop:
            kill_group(proc.pid)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        if box is not None:  # first: an escaped child may hold our pipes open
            await asyncio.shield(box.kill())
            LIVE_BOXES.discard(box)
        if stop:
            await asyncio.shield(proc.wait())
        LIVE_GROUPS.discard(proc.pid)
        usage = box.usage() if box is not None else None
        if box is not None:  # here, so that a cancelled run leaves no cgroup either
            host.release(box)
        freed = await _drop_scratch(host, scratch)  # nothing is left to write in it
    code = proc.returncode if proc.returncode is not None else -9
    if usage is not None and usage.oom:
        state = pb.STATE_OOM
        limit, peak = req.memory / 2**20, usage.peak_memory / 2**20
        why = f"out of memory: limit {limit:.1f} MiB, peak {peak:.1f} MiB"
    elif timed_out:  # one status whatever the kill did to the shell (as timeout(1))
        state, why, code = pb.STATE_TIMEOUT, f"killed after {task.timeout:g}s", TIMEOUT_STATUS
    elif code == 0:
        state, why = pb.STATE_OK, ""
    else:
        state = pb.STATE_FAILED
        why = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
    ev = result_event(node, state, why, start, code)
    if usage is not None:
        ev.result.cpu_ns, ev.result.peak_memory = usage.cpu_ns, usage.peak_memory
    ev.result.scratch_freed = freed
    await emit(ev)


async def run_ping(node: str, emit: Emit) -> None:
    await emit(result_event(node, pb.STATE_OK, "", time.time_ns()))


async def run_facts(node: str, emit: Emit, host: Host | None = None) -> None:
    start = time.time_ns()
    try:
        f = collect_facts(host)
    except Exception as e:  # a fact source failing is this node's failure, not the agent's
        await emit(result_event(node, pb.STATE_FAILED, f"facts: {e}", start))
        return
    await emit(pb.TaskEvent(node=node, facts=f))
    await emit(result_event(node, pb.STATE_OK, "", start))
