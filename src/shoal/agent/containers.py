"""NodeService (shoal.v1, the mini-faas API) on the agent: faas containers.

A container is a warm worker process (agent/worker.py) in a sandbox of its
own: memory limit = the function's memory (no swap), a CPU quota in
proportion to it (0.67 cores per GiB, as mini-faas), a process limit, its
own scratch as TMPDIR. Calls beyond a container's concurrency are refused
(RESOURCE_EXHAUSTED "container busy"): the scheduler holds the queue, and an
agent that queued would hide its accounting errors and blur the time limit.
A call's time limit is the container's timeout_in_ms (0: none); one that
runs over it, or an OOM kill, ends the container (agent/container.py).
function_log is what a call printed (Python: through sys.stdout/stderr; a
command: its stderr), its first 64 KiB.

This runs code as root: with TLS only an operator's or the controller's
certificate may call it. GetStats' CPU figures: the node's is a percentage
of all its CPUs, a container's of one core (as top and docker stats), both
since the previous GetStats.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, NoReturn

import grpc

from shoal.agent import tasks
from shoal.agent.cgroups import Host
from shoal.agent.container import Container, Outcome, Spec, StartError, worker_command
from shoal.agent.sandbox import Request, SandboxError
from shoal.agent.spares import SPARE_CORES, SPARE_LIMIT, SPARE_MEMORY, SPARES, Spares
from shoal.agent.worker import MAX_PAYLOAD
from shoal.core import tls
from shoal.core.wire.shoal.v1 import faas_pb2 as fpb
from shoal.core.wire.shoal.v1 import faas_pb2_grpc as frpc

log = logging.getLogger("shoal.agent.faas")

CORES_PER_GIB = 0.67  # mini-faas: CPU in proportion to memory
MIN_CORES = 0.1  # so that a 128 MiB function (0.08 cores) starts in reasonable time
MAX_CONCURRENCY = 256
START_LIMIT = 30.0  # seconds a worker may take to import its module
CHUNK = 64 * 1024  # body bytes per streamed message


def _pids(concurrency: int) -> int:
    return max(128, 16 * concurrency)  # a thread or a command's shell per call, and room


class NodeService(frpc.NodeServiceServicer):
    def __init__(
        self,
        node: str,
        identity: tls.Identity | None,
        host: Host,
        state: Path,
        spares: int = SPARES,
    ) -> None:
        self.node = node
        self.secure = identity is not None  # else --insecure, announced at start
        self.host = host
        self.scratch = state / "containers" / node  # parent of each container's scratch
        self.containers: dict[str, Container] = {}
        self._bg: set[asyncio.Task[None]] = set()  # removals nobody awaits
        self._cpu = _cpu_times()
        self.spares = Spares(node, spares, self._spare)

    # -- access ----------------------------------------------------------------

    async def _admit(self, context: grpc.aio.ServicerContext[Any, Any], what: str) -> None:
        if not self.secure:
            return
        auth = dict(context.auth_context())
        role = tls.peer_role(auth)
        if role in tls.COMMANDERS:
            return
        peer = tls.peer_name(auth) or context.peer()
        why = f"{peer} is a {role or 'anonymous'} certificate: it may not {what}"
        log.warning("%s: refused a NodeService request from %s: %s", self.node, peer, why)
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, f"{self.node} refused: {why}")

    async def _fail(
        self, context: grpc.aio.ServicerContext[Any, Any], code: grpc.StatusCode, why: str
    ) -> NoReturn:
        log.info("%s: %s: %s", self.node, code.name, why)
        await context.abort(code, why)
        raise AssertionError("unreachable: abort raises")

    def _get(self, cid: str) -> Container | None:
        c = self.containers.get(cid)
        return c if c is not None and not c.gone else None

    # -- CreateContainer ---------------------------------------------------------

    def _check(self, meta: fpb.FunctionMeta) -> tuple[grpc.StatusCode, str] | None:
        bad = grpc.StatusCode.INVALID_ARGUMENT
        if not meta.handler.strip():
            return bad, "function_meta.handler is empty"
        if "\0" in meta.handler or "\0" in meta.code_dir:
            return bad, "function_meta: a NUL byte in handler or code_dir"
        if meta.memory_in_bytes <= 0:
            return bad, f"function_meta.memory_in_bytes {meta.memory_in_bytes}: must be positive"
        total = _memory()[0]
        if meta.memory_in_bytes > total:
            return grpc.StatusCode.RESOURCE_EXHAUSTED, (
                f"function_meta.memory_in_bytes {meta.memory_in_bytes / 2**20:.0f} MiB: "
                f"node {self.node} has {total / 2**20:.0f} MiB"
            )
        if meta.timeout_in_ms < 0:
            return bad, f"function_meta.timeout_in_ms {meta.timeout_in_ms}: must not be negative"
        if not (0 <= meta.cpu_quota <= 4096):  # NaN fails too
            return bad, f"function_meta.cpu_quota {meta.cpu_quota}: cores, 0 for the default"
        if not (0 <= meta.concurrency <= MAX_CONCURRENCY):
            return bad, f"function_meta.concurrency {meta.concurrency}: 0 to {MAX_CONCURRENCY}"
        if meta.code_dir and not (os.path.isabs(meta.code_dir) and os.path.isdir(meta.code_dir)):
            return bad, f"function_meta.code_dir {meta.code_dir}: not a directory on {self.node}"
        return None

    async def CreateContainer(
        self, request: fpb.CreateContainerRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> fpb.CreateContainerReply:
        await self._admit(context, "create containers")
        meta = request.function_meta
        problem = self._check(meta)
        if problem is not None:
            await self._fail(context, *problem)
        started = time.monotonic()
        made: list[Container] = []
        # its own task: a caller that gives up cannot cut a start short between
        # a process spawned and a process tracked; what it made is removed
        work = asyncio.create_task(self._create(request.name or meta.function_name, meta, made))
        try:
            c = await asyncio.shield(work)
        except asyncio.CancelledError:
            self._abandon(work, made)
            raise
        except (StartError, SandboxError) as e:
            why = f"container for {meta.function_name or request.name}: {e}"
            await self._fail(context, grpc.StatusCode.FAILED_PRECONDITION, why)
        ms = (time.monotonic() - started) * 1000
        log.info(
            "%s: container %s of %s ready: cold start %.0f ms (%s, %.0f MiB%s)",
            self.node, c.id, c.spec.function_name, ms, c.spec.handler, c.spec.memory / 2**20,
            ", from a spare" if c.from_spare else "",
        )  # fmt: skip
        return fpb.CreateContainerReply(container_id=c.id)

    def _abandon(self, work: asyncio.Task[Container], made: list[Container]) -> None:
        name = made[0].id if made else "(not made yet)"
        log.info("%s: container %s: its caller gave up during the start", self.node, name)

        def done(t: asyncio.Task[Container]) -> None:
            if not t.cancelled() and t.exception() is None:
                self._background(t.result().destroy("CONTAINER_GONE", "creation abandoned"))

        for c in made:
            self._background(c.destroy("CONTAINER_GONE", "creation abandoned"))
        work.add_done_callback(done)

    def _background(self, coro: Any) -> None:
        t = asyncio.create_task(coro)
        self._bg.add(t)
        t.add_done_callback(self._bg.discard)

    async def _create(self, name: str, meta: fpb.FunctionMeta, made: list[Container]) -> Container:
        cores = meta.cpu_quota or max(MIN_CORES, CORES_PER_GIB * meta.memory_in_bytes / 2**30)
        concurrency = meta.concurrency or 1
        req = Request(memory=meta.memory_in_bytes, cpu_quota=cores, pids=_pids(concurrency))
        handler = meta.handler.strip()
        spec = Spec(
            meta.function_name or name, handler, meta.memory_in_bytes,
            meta.timeout_in_ms, concurrency, meta.code_dir,
        )  # fmt: skip
        c = self.spares.take(meta.memory_in_bytes)
        if c is not None:
            try:  # the function's limits, then its name: the spare becomes it
                self.host.limit(c.box, req)
                await c.become(spec, self._forget)
            except (SandboxError, ConnectionError, RuntimeError) as e:
                log.info("%s: a spare could not be used (%s): a new worker", self.node, e)
                await c.destroy("", "spare unusable")
                c = None
        if c is None:
            c = await self._launch(req, spec, self._forget)
        self.spares.refill()  # this agent serves functions: keep spares from now on
        self.containers[c.id] = c  # now, so that agent stop finds it while it starts
        made.append(c)
        await c.ready(max(START_LIMIT, meta.timeout_in_ms / 1000))
        return c

    async def _spare(self) -> Container:
        req = Request(memory=SPARE_MEMORY, cpu_quota=SPARE_CORES, pids=_pids(1))
        spec = Spec("(spare)", "", SPARE_MEMORY, 0, 1, "")
        c = await self._launch(req, spec, self.spares.forget, spare=True)
        await c.hello(SPARE_LIMIT)
        return c

    async def _launch(
        self, req: Request, spec: Spec, forget: Callable[[str], None], spare: bool = False
    ) -> Container:
        """A worker process for spec in a sandbox of its own, with its scratch
        (not ready yet); spare: one that waits to be told its function."""
        code_dir = spec.code_dir
        try:
            self.scratch.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise SandboxError(f"cannot make {self.scratch}: {e.strerror}") from None
        scratch = self.host.scratches.make(str(self.scratch))
        try:
            box = self.host.sandbox(req)
        except SandboxError:
            await asyncio.to_thread(self.host.scratches.remove, scratch)
            raise
        if box is None:  # only when nothing is asked, and a memory limit always is
            raise SandboxError("this node has no sandboxes")
        extra = {"TMPDIR": str(scratch), "SHOAL_SCRATCH": str(scratch)}
        if code_dir:
            extra["SHOAL_CODE_DIR"] = code_dir
        if spare:
            extra["SHOAL_SPARE"] = "1"
        try:
            proc = await asyncio.create_subprocess_exec(
                *box.argv(worker_command(spec.handler)),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd="/" if spare else code_dir or str(scratch),  # a spare's: see _become
                env=tasks.clean_env(self.node, extra),
                start_new_session=True,
            )
        except OSError as e:
            self.host.release(box)
            await asyncio.to_thread(self.host.scratches.remove, scratch)
            raise StartError(f"cannot start the worker: {e}") from None
        tasks.LIVE_BOXES.add(box)
        c = Container(f"{self.node}-{secrets.token_hex(6)}", spec, self.host, box, scratch, proc,
                      forget)  # fmt: skip
        c.cpu_mark = (0, time.monotonic())
        return c

    def _forget(self, cid: str) -> None:
        self.containers.pop(cid, None)

    # -- InvokeFunction ------------------------------------------------------------

    async def InvokeFunction(
        self, request: fpb.InvokeFunctionRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[fpb.InvokeFunctionReply]:
        await self._admit(context, "invoke functions")
        c = self._get(request.container_id)
        if c is None:
            await self._fail(
                context, grpc.StatusCode.NOT_FOUND,
                f"no container {request.container_id!r} on {self.node}",
            )  # fmt: skip
        if c.busy():
            n = c.spec.concurrency
            await self._fail(
                context, grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"container {c.id} busy: {n} call(s) in flight, its concurrency is {n}",
            )  # fmt: skip
        if len(request.event) > MAX_PAYLOAD:
            await self._fail(
                context, grpc.StatusCode.INVALID_ARGUMENT,
                f"event of {len(request.event)} bytes: above {MAX_PAYLOAD}",
            )  # fmt: skip
        out: Outcome = await c.invoke(request.event)
        if out.code in ("OOM", "TIMEOUT", "CONTAINER_GONE"):
            log.info("%s: call on %s: %s: %s", self.node, c.id, out.code, out.message)
        yield fpb.InvokeFunctionReply(
            header=fpb.InvokeHeader(max_mem_usage_in_bytes=out.peak, function_log=out.log)
        )
        for i in range(0, len(out.body), CHUNK):
            yield fpb.InvokeFunctionReply(body=out.body[i : i + CHUNK])
        yield fpb.InvokeFunctionReply(
            footer=fpb.InvokeFooter(
                duration_in_nanos=out.ns, error_code=out.code, error_message=out.message
            )
        )

    # -- RemoveContainer, GetStats -----------------------------------------------

    async def RemoveContainer(
        self, request: fpb.RemoveContainerRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> fpb.RemoveContainerReply:
        await self._admit(context, "remove containers")
        c = self._get(request.container_id)
        if c is None:
            await self._fail(
                context, grpc.StatusCode.NOT_FOUND,
                f"no container {request.container_id!r} on {self.node}",
            )  # fmt: skip
        await c.destroy("CONTAINER_GONE", "container removed")
        log.info("%s: container %s removed", self.node, c.id)
        return fpb.RemoveContainerReply()

    async def GetStats(
        self, request: fpb.GetStatsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> fpb.GetStatsReply:
        await self._admit(context, "read container stats")
        self.spares.wake()  # a scheduler holds this node: its first start may come
        total, available = _memory()
        cpu, self._cpu = self._cpu, _cpu_times()
        busy, whole = self._cpu[0] - cpu[0], self._cpu[1] - cpu[1]
        reply = fpb.GetStatsReply(
            node_stats=fpb.NodeStats(
                total_memory_in_bytes=total,
                memory_usage_in_bytes=total - available,
                available_memory_in_bytes=available,
                cpu_usage_pct=100.0 * busy / whole if whole > 0 else 0.0,
                spares=self.spares.waiting,
            )
        )
        now = time.monotonic()
        for c in list(self.containers.values()):
            u = c.box.usage()
            (ns, then), c.cpu_mark = c.cpu_mark, (u.cpu_ns, now)
            pct = (u.cpu_ns - ns) / 1e7 / (now - then) if now > then else 0.0
            reply.container_stats_list.add(
                container_id=c.id,
                total_memory_in_bytes=c.spec.memory,
                memory_usage_in_bytes=u.memory,
                cpu_usage_pct=max(pct, 0.0),
                function_name=c.spec.function_name,
                in_flight=len(c.calls),
            )
        return reply

    # -- agent stop ----------------------------------------------------------------

    async def close(self) -> None:
        """Kill every container and spare (the agent's SIGTERM path)."""
        await self.spares.close()
        live = list(self.containers.values())
        await asyncio.gather(
            *(c.destroy("CONTAINER_GONE", f"agent {self.node} stopping") for c in live),
            *self._bg,
            return_exceptions=True,
        )
        if live:
            log.info("%s: %d container(s) removed at stop", self.node, len(live))


def _memory() -> tuple[int, int]:
    """The node's (total, available) memory in bytes, from /proc/meminfo."""
    import psutil

    vm = psutil.virtual_memory()
    return int(vm.total), int(vm.available)


def _cpu_times() -> tuple[float, float]:
    """(busy, all) CPU seconds of the node so far, from /proc/stat."""
    import psutil

    t = psutil.cpu_times()
    idle = t.idle + getattr(t, "iowait", 0.0)
    return sum(t) - idle, sum(t)
