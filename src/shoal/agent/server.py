"""The node agent: a grpc.aio server for shoal.v1.Agent (and Files).

Each Run serves request.tree: the local part (exec, ping or facts) runs
concurrently with the relay to the children, and both feed one bounded queue
that the response stream drains, so back-pressure reaches every producer.
`serve` hosts one server per AgentSpec in one process (the local cluster's
--per-process mode) and returns after SIGTERM/SIGINT, once running commands
are killed and the servers are stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from shoal.agent import tasks
from shoal.agent.relay import ACCEPTED, Channels, relay_children, result_event
from shoal.core import tls
from shoal.core.wire import frpc, pb, rpc
from shoal.errors import ConfigError

log = logging.getLogger("shoal.agent")

QUEUE_DEPTH = 64  # events in flight per request on this node
_DONE = pb.TaskEvent()  # sentinel, compared by identity


@dataclass
class AgentSpec:
    name: str
    host: str
    port: int
    identity: tls.Identity | None  # None: plain text (--insecure)
    files_root: Path | None = None  # where absolute copy paths start; None: "/"


class AgentService(rpc.AgentServicer):
    def __init__(self, spec: AgentSpec, channels: Channels) -> None:
        self.spec = spec
        self.channels = channels

    async def _local(self, req: pb.TaskRequest, emit: tasks.Emit) -> None:
        node = req.tree.name
        try:
            kind = req.WhichOneof("task")
            if kind == "exec":
                await tasks.run_exec(node, req.exec, emit)
            elif kind == "ping":
                await tasks.run_ping(node, emit)
            elif kind == "facts":
                await tasks.run_facts(node, emit)
            else:
                await emit(result_event(node, pb.STATE_FAILED, f"unknown task {kind!r}"))
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.exception("task on %s failed", node)
            await emit(result_event(node, pb.STATE_FAILED, f"agent error: {e}"))

    async def Run(
        self, request: pb.TaskRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.TaskEvent]:
        if request.WhichOneof("task") is None:  # a dialler's probe, see relay._last_error
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "no task")
        if request.tree.children:
            # Tells the caller this node has taken the request: its children are
            # never re-served elsewhere after this (see relay.relay_child). A leaf
            # has none to re-serve; sparing it this write is ~14% of its CPU.
            await context.send_initial_metadata(((ACCEPTED, request.tree.name),))
        peer = tls.peer_name(dict(context.auth_context())) or context.peer()
        log.info("%s: %s from %s", self.spec.name, request.WhichOneof("task"), peer)
        q: asyncio.Queue[pb.TaskEvent] = asyncio.Queue(QUEUE_DEPTH)

        async def work() -> None:
            try:
                await asyncio.gather(
                    self._local(request, q.put),
                    relay_children(request, list(request.tree.children), self.channels, q.put),
                )
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("relay failed")
            await q.put(_DONE)

        task = asyncio.create_task(work())
        try:
            while (ev := await q.get()) is not _DONE:
                yield ev
        finally:
            # Caller gone or done: cancels the command (its group is killed) and child calls.
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def _log_setup() -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )


def _bind(add_port: Callable[[str], int], addr: str) -> int:
    """grpc raises RuntimeError (or returns 0) when it cannot bind: say why in one line."""
    try:
        port = add_port(addr)
    except RuntimeError:
        port = 0
    if port == 0:
        raise ConfigError(f"cannot listen on {addr}: the port is in use or the address is not ours")
    return port


async def _start(spec: AgentSpec) -> tuple[grpc.aio.Server, Channels, int]:
    from shoal.agent.files import FilesService

    creds = tls.channel_credentials(spec.identity) if spec.identity else None
    channels = Channels(creds)
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    rpc.add_AgentServicer_to_server(AgentService(spec, channels), server)
    files = FilesService(channels.get, spec.files_root or Path("/"), node=spec.name)
    files.sweep()  # what a crash of this agent left (issue 10)
    frpc.add_FilesServicer_to_server(files, server)
    addr = f"{spec.host}:{spec.port}"
    if spec.identity is None:
        log.warning(
            "INSECURE: agent %s serves plain text on %s without TLS: any peer that can "
            "reach this port can run commands as this user (--insecure)",
            spec.name,
            addr,
        )
        port = _bind(server.add_insecure_port, addr)
    else:
        server_creds = tls.server_credentials(spec.identity)
        port = _bind(lambda a: server.add_secure_port(a, server_creds), addr)
    await server.start()
    log.info(
        "agent %s listening on %s:%d (%s)",
        spec.name,
        spec.host,
        port,
        "plain text" if spec.identity is None else "mutual TLS",
    )
    return server, channels, port


@dataclass
class ControllerLink:
    """Register with a fleet controller and heartbeat (shoal agent --controller)."""

    url: str
    interval: float = 10.0
    pool: str | None = None


def _pidfd_child_watcher(loop: asyncio.AbstractEventLoop) -> None:
    """Python 3.11 waits for every command in a thread of its own; a pidfd in
    the event loop is cheaper (3.12+ does this by itself)."""
    if sys.version_info >= (3, 12) or not hasattr(os, "pidfd_open"):
        return
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:  # kernel < 5.3 or seccomp: keep the default
        return
    watcher = asyncio.PidfdChildWatcher()
    watcher.attach_loop(loop)
    asyncio.get_event_loop_policy().set_child_watcher(watcher)


async def serve(
    specs: list[AgentSpec],
    *,
    on_ready: Callable[[list[int]], None] | None = None,
    controller: ControllerLink | None = None,
) -> None:
    """Run one server per spec until SIGTERM/SIGINT; then kill every running
    command, stop the servers and return. With a controller, every agent
    registers with its facts and heartbeats until it stops."""
    _log_setup()
    loop = asyncio.get_running_loop()
    _pidfd_child_watcher(loop)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    started: list[tuple[grpc.aio.Server, Channels, int]] = []
    heartbeats: list[asyncio.Task[Any]] = []
    try:
        for spec in specs:
            started.append(await _start(spec))
        if on_ready is not None:
            on_ready([p for _, _, p in started])
        if controller is not None:
            from shoal.agent.registration import run_registration

            for spec in specs:
                t = asyncio.create_task(
                    run_registration(
                        controller.url,
                        spec.identity,
                        spec.name,
                        controller.interval,
                        stop,
                        pool=controller.pool,
                    )
                )
                heartbeats.append(t)
        await stop.wait()
        log.info("stopping: killing %d running command(s)", len(tasks.LIVE_GROUPS))
    finally:
        stop.set()
        if heartbeats:
            await asyncio.wait(heartbeats, timeout=5)
            for t in heartbeats:
                t.cancel()
        tasks.kill_all()
        await asyncio.gather(*(s.stop(grace=1.0) for s, _, _ in started), return_exceptions=True)
        tasks.kill_all()
        for _, ch, _ in started:
            with contextlib.suppress(Exception):
                await ch.close()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
