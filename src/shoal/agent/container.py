"""One faas container on the agent's side: a warm worker process
(agent/worker.py) in a sandbox of its own, and the calls it is serving.

The container ends in one way whatever ends it (time-out, OOM, the worker's
exit, RemoveContainer, agent stop): ``destroy`` takes it out of the registry,
kills every process of its sandbox and waits until none is left, removes the
sandbox and its scratch, and only then answers its calls, so a caller that
reads a TIMEOUT, OOM or CONTAINER_GONE footer knows the container is gone.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shoal.agent import tasks
from shoal.agent.cgroups import Host
from shoal.agent.sandbox import Sandbox, Usage
from shoal.agent.worker import HEADER, MAX_META, MAX_PAYLOAD, pack
from shoal.errors import ShoalError

log = logging.getLogger("shoal.agent.faas")

STDERR_KEPT = 4096  # bytes of the worker's own stderr kept to explain a failed start


class StartError(ShoalError):
    """The worker did not become ready; the message is one line."""


@dataclass
class Outcome:
    body: bytes = b""
    log: str = ""
    ns: int = 0
    code: str = ""  # "" or OOM, TIMEOUT, FUNCTION_ERROR, CONTAINER_GONE
    message: str = ""
    peak: int = 0  # the container's peak memory, bytes


@dataclass
class Spec:
    function_name: str
    handler: str
    memory: int
    timeout_ms: int
    concurrency: int
    code_dir: str


@dataclass
class Container:
    id: str
    spec: Spec
    host: Host
    box: Sandbox
    scratch: Path
    proc: asyncio.subprocess.Process
    forget: Callable[[str], None]  # takes the id out of the registry
    calls: dict[int, asyncio.Future[Outcome]] = field(default_factory=dict)
    seq: int = 0
    stderr: collections.deque[bytes] = field(default_factory=lambda: collections.deque())
    ending: asyncio.Task[None] | None = None
    gone: bool = False
    peak: int = 0  # bytes, read as it is removed
    oom_kills: int = 0
    cpu_mark: tuple[int, float] = (0, 0.0)  # (cpu ns, monotonic s) at the last GetStats
    from_spare: bool = False  # started before its function was asked for (agent/spares.py)
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    # -- start -----------------------------------------------------------------

    async def ready(self, limit: float) -> None:
        """Wait for the worker's first frame; StartError when it says no, dies
        or takes longer than limit seconds (the container is destroyed then)."""
        self._spawn(self._drain_stderr())
        try:
            async with asyncio.timeout(limit):
                first = await self._frame()
        except TimeoutError:
            first = None
            why = f"the worker was not ready within {limit:g}s"
        else:
            why = ""
        if first is None or "ready" not in first[0]:
            if first is not None:
                why = str(first[0].get("error") or "the worker said no")
            elif not why:
                await self._reap()
                why = self._oom(self.box.usage(), dead=True) or _last(self.stderr) or self._death()
            await self.destroy("", why)
            raise StartError(why)
        self.oom_kills = self.box.usage().oom_kills
        self._spawn(self._read())

    async def hello(self, limit: float) -> None:
        """A spare's first frame, {"spare": true}; StartError (and the spare
        destroyed) when it does not come within limit seconds."""
        try:
            async with asyncio.timeout(limit):
                first = await self._frame()
        except TimeoutError:
            first = None
        if first is None or first[0].get("spare") is not True:
            await self.destroy("", "")
            raise StartError("a spare worker did not start")

    async def become(self, spec: Spec, forget: Callable[[str], None]) -> None:
        """A spare takes on a function (agent/worker.py's init frame); its
        sandbox has the function's limits already. ready() follows."""
        self.spec, self.forget, self.from_spare = spec, forget, True
        init = {"handler": spec.handler, "code_dir": spec.code_dir}
        init["cwd"] = spec.code_dir or str(self.scratch)
        assert self.proc.stdin is not None
        self.proc.stdin.write(pack(init))
        await self.proc.stdin.drain()

    def _spawn(self, coro: Any) -> None:
        t = asyncio.create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    async def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        kept = 0
        while chunk := await self.proc.stderr.read(4096):
            self.stderr.append(chunk)
            kept += len(chunk)
            while kept > STDERR_KEPT and len(self.stderr) > 1:
                kept -= len(self.stderr.popleft())

    async def _frame(self) -> tuple[dict[str, Any], bytes] | None:
        """The worker's next frame; None at EOF or on a malformed frame."""
        assert self.proc.stdout is not None
        try:
            mlen, plen = HEADER.unpack(await self.proc.stdout.readexactly(HEADER.size))
            if mlen > MAX_META or plen > MAX_PAYLOAD:
                return None
            meta = json.loads(await self.proc.stdout.readexactly(mlen))
            payload = await self.proc.stdout.readexactly(plen)
        except (asyncio.IncompleteReadError, ValueError, ConnectionError):
            return None
        return (meta, payload) if isinstance(meta, dict) else None

    # -- calls -----------------------------------------------------------------

    def busy(self) -> bool:
        return len(self.calls) >= self.spec.concurrency

    async def invoke(self, event: bytes) -> Outcome:
        """Run one call. The caller checked busy(); its time limit runs here,
        not in the caller, so a caller that goes away stops nothing."""
        if self.gone:
            return Outcome(code="CONTAINER_GONE", message="container removed")
        self.seq += 1
        cid = self.seq
        fut: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self.calls[cid] = fut
        timer = None
        if self.spec.timeout_ms > 0:
            timer = asyncio.get_running_loop().call_later(
                self.spec.timeout_ms / 1000, self._expire, cid
            )
        fut.add_done_callback(lambda _: timer.cancel() if timer else None)
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write(pack({"id": cid}, event))
            await self.proc.stdin.drain()
        except (ConnectionError, RuntimeError):
            pass  # the worker is gone: the reader ends the call
        return await asyncio.shield(fut)

    def _expire(self, cid: int) -> None:
        if cid in self.calls and not self.gone:
            limit = self.spec.timeout_ms
            late = {cid: ("TIMEOUT", f"ran over its time limit of {limit} ms")}
            self._spawn(self.destroy("CONTAINER_GONE", "", late))

    async def _read(self) -> None:
        while (frame := await self._frame()) is not None:
            meta, body = frame
            cid = meta.get("id")
            if not isinstance(cid, int):
                break  # not our protocol: the container is unusable
            u = self.box.usage()
            oom = self._oom(u)
            if oom:
                await self.destroy("OOM", oom)
                return
            fut = self.calls.pop(cid, None)
            if fut is None or fut.done():
                continue
            fut.set_result(
                Outcome(
                    body,
                    str(meta.get("log", "")),
                    int(meta.get("ns") or 0),
                    str(meta.get("code", "")),
                    str(meta.get("message", "")),
                    u.peak_memory,
                )
            )
        if not self.gone:  # the worker ended by itself
            await self._reap()
            oom = self._oom(self.box.usage(), dead=True)
            await self.destroy("OOM" if oom else "CONTAINER_GONE", oom or self._death())

    async def _reap(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()  # 3.12+ waits for every pipe
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.proc.wait(), 5)

    def _oom(self, u: Usage, dead: bool = False) -> str:
        """A message when the memory limit killed something since the start
        (or, for a dead worker on a kernel without an OOM-kill count, was hit)."""
        if u.oom_kills <= self.oom_kills and not (dead and u.oom and not u.oom_kills):
            return ""
        limit, peak = self.spec.memory / 2**20, u.peak_memory / 2**20
        return f"out of memory: limit {limit:.1f} MiB, peak {peak:.1f} MiB"

    def _death(self) -> str:
        rc = self.proc.returncode
        if rc is None:
            return "the worker stopped answering"
        return f"the worker exited ({f'signal {-rc}' if rc < 0 else f'status {rc}'})"

    # -- end -------------------------------------------------------------------

    async def destroy(
        self, code: str, message: str, special: dict[int, tuple[str, str]] | None = None
    ) -> None:
        """Kill and remove the container, then end its calls: with ``code``
        and ``message``, or per call id as ``special`` says. Its own task, so
        a caller that goes away (a cancelled RPC) cannot cut it short."""
        if self.ending is None:
            self.gone = True
            self.forget(self.id)
            self.ending = asyncio.create_task(self._end(code, message, special or {}))
        await asyncio.shield(self.ending)

    async def _end(self, code: str, message: str, special: dict[int, tuple[str, str]]) -> None:
        for t in list(self._tasks):  # the reader, the drain, a time-out's own task
            t.cancel()
        try:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.box.kill()
            tasks.LIVE_BOXES.discard(self.box)
            await self._reap()
            self.peak = self.box.usage().peak_memory
            self.host.release(self.box)
            await asyncio.to_thread(self.host.scratches.remove, self.scratch)
        finally:
            for cid, fut in self.calls.items():
                c, m = special.get(cid, (code, message or "container removed"))
                if not fut.done():
                    fut.set_result(Outcome(code=c, message=m, peak=self.peak))
            self.calls.clear()


def _last(chunks: collections.deque[bytes]) -> str:
    text = b"".join(chunks).decode(errors="replace").strip()
    return text.splitlines()[-1] if text else ""


def worker_command(handler: str) -> str:
    """The sandbox's command: exec, so the worker itself is the process in it."""
    return "exec " + shlex.join([sys.executable, "-m", "shoal.agent.worker", handler])
