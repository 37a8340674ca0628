"""The node agent: a grpc.aio server for shoal.v1.Agent (and Files, and the
faas NodeService of agent/containers.py).

Each Run is admitted by the gate (an operator's grant, core/grant.py), then
serves request.tree: the local part (exec, ping or facts) runs concurrently
with the relay to the children, and both feed one bounded queue that the
response stream drains, so back-pressure reaches every producer. The work is
an Execution keyed by task id (agent/runs.py): a later Run of the same task
takes the stream over instead of running it again.
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
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from shoal.agent import tasks
from shoal.agent.cgroups import Host
from shoal.agent.gate import Gate
from shoal.agent.jobs import JobError, Jobs
from shoal.agent.runs import Execution, Runs
from shoal.agent.spares import SPARES
from shoal.core import tls
from shoal.core.config import shoal_home
from shoal.core.grant import WINDOW, body_of
from shoal.core.keepalive import Keepalive
from shoal.core.wire import frpc, pb, rpc
from shoal.errors import ConfigError
from shoal.tree.channels import Channels, listen
from shoal.tree.relay import Relay
from shoal.tree.subtree import result_event

log = logging.getLogger("shoal.agent")

HANDSHAKE_TIMEOUT = 5.0  # seconds a new connection has to complete TLS
MAX_CONNECTIONS = 2048  # incoming connections held at once


@dataclass
class AgentSpec:
    name: str
    host: str
    port: int
    identity: tls.Identity | None  # None: plain text (--insecure)
    files_root: Path | None = None  # where absolute copy paths start; None: "/"
    bulk_port: int = 0  # copy's bulk data plane (tree/bulk.py); 0: any free port
    faas_spares: int = SPARES  # warm workers kept for faas containers (agent/spares.py)


class AgentService(rpc.AgentServicer):
    def __init__(
        self, spec: AgentSpec, channels: Channels, runs: Runs, host: Host, jobs: Path
    ) -> None:
        self.spec = spec
        self.channels = channels
        self.runs = runs
        self.host = host
        self.gate = Gate(spec.name, spec.identity)
        self.jobs = Jobs(jobs / spec.name, spec.name, host)
        ka = channels.keepalive
        # An orphan waits this long for an adopter: longer than a grandparent
        # takes to find its relay dead and dial us.
        self.grace = 2 * (ka.interval + ka.timeout)

    async def _local(self, req: pb.TaskRequest, emit: tasks.Emit, signer: str) -> None:
        node = req.tree.name
        try:
            kind = req.WhichOneof("task")
            if kind == "exec":
                await tasks.run_exec(node, req.exec, emit, self.host)
            elif kind == "ping":
                await tasks.run_ping(node, emit)
            elif kind == "facts":
                await tasks.run_facts(node, emit, self.host)
            elif kind in ("job", "jobs"):
                await self._job(req, emit, signer)
            else:
                await emit(result_event(node, pb.STATE_FAILED, f"unknown task {kind!r}"))
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.exception("task on %s failed", node)
            await emit(result_event(node, pb.STATE_FAILED, f"agent error: {e}"))

    async def _job(self, req: pb.TaskRequest, emit: tasks.Emit, signer: str) -> None:
        node, start = req.tree.name, time.time_ns()
        try:
            if req.WhichOneof("task") == "job":
                found = [self.jobs.start(req.job)]
            else:
                found = await self.jobs.query(req.jobs, signer)
        except JobError as e:
            await emit(result_event(node, pb.STATE_REFUSED, f"refused: {e}", start))
            return
        for status in found:
            await emit(pb.TaskEvent(node=node, job=status))
        await emit(result_event(node, pb.STATE_OK, "", start))

    def _execution(self, request: pb.TaskRequest, body: bytes, signer: str) -> Execution:
        ex: Execution | None = None

        async def work(emit: tasks.Emit) -> None:
            relay = Relay(self.channels, emit)
            if ex is not None:
                ex.relay = relay
            children = list(request.tree.children)
            await asyncio.gather(self._local(request, emit, signer), relay.serve(request, children))

        if not request.task_id:  # an old client: nothing can attach to it
            ex = Execution(body, work)
        else:
            ex = self.runs.start((request.task_id, self.spec.name), body, work, self.grace)
        return ex

    async def Run(
        self, request: pb.TaskRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.TaskEvent]:
        kind = request.WhichOneof("task")
        if kind is None:  # a dialler's probe, see relay._last_error
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "no task")
        body = body_of(request)
        ex = self.runs.get((request.task_id, self.spec.name)) if request.task_id else None
        signer = await self.gate.admit(
            context, request.signed, body, request.tree, fresh=ex is None
        )
        peer = tls.peer_name(dict(context.auth_context())) or context.peer()
        if ex is None:
            log.info("%s: %s for %s from %s", self.spec.name, kind, signer, peer)
            ex = self._execution(request, body, signer)
        elif ex.body != body:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "task id reused for another task")
        else:
            log.info("%s: %s for %s: %s takes it over", self.spec.name, kind, signer, peer)
        token, replay = ex.attach()
        try:
            for old in replay:
                yield old
            while (ev := await ex.next(token)) is not None:
                yield ev
        finally:
            ex.detach(token)

    async def Cancel(
        self, request: pb.CancelRequest, context: grpc.aio.ServicerContext
    ) -> pb.CancelReply:
        ex = self.runs.get((request.task_id, request.node))
        if ex is not None and request.node == self.spec.name:
            ex.stop()
            return pb.CancelReply(found=True)
        return pb.CancelReply(found=False)


def _log_setup() -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )


@dataclass
class _Running:
    server: grpc.aio.Server
    channels: Channels
    files: Any  # FilesService
    port: int
    service: AgentService
    nodes: Any  # NodeService (faas containers)


async def _start(
    spec: AgentSpec, keepalive: Keepalive, runs: Runs, host: Host, jobs: Path
) -> _Running:
    from shoal.agent.containers import NodeService
    from shoal.agent.files import FilesService
    from shoal.core.wire.shoal.v1 import faas_pb2_grpc

    creds = tls.channel_credentials(spec.identity) if spec.identity else None
    channels = Channels(creds, keepalive)
    server = grpc.aio.server(
        options=[
            ("grpc.so_reuseport", 0),
            # A peer that has not finished TLS by then is dropped (gRPC waits 120 s),
            # and at most this many connections are held: a flood of idle sockets
            # costs bounded memory and never the operator's own connection's slot
            # for long.
            ("grpc.server_handshake_timeout_ms", int(HANDSHAKE_TIMEOUT * 1000)),
            ("grpc.max_allowed_incoming_connections", MAX_CONNECTIONS),
            *keepalive.server_options(),
        ]
    )
    service = AgentService(spec, channels, runs, host, jobs)
    service.jobs.sweep()  # what the last agent left running
    rpc.add_AgentServicer_to_server(service, server)
    files = FilesService(
        channels.get, spec.files_root or Path("/"), service.gate, spec.name, spec.host,
        spec.bulk_port,
    )  # fmt: skip
    files.sweep()  # what a crash of this agent left
    frpc.add_FilesServicer_to_server(files, server)
    nodes = NodeService(spec.name, spec.identity, host, jobs.parent, spec.faas_spares)
    faas_pb2_grpc.add_NodeServiceServicer_to_server(nodes, server)
    addr = f"{spec.host}:{spec.port}"
    if spec.identity is None:
        log.warning(
            "INSECURE: agent %s serves plain text on %s without TLS: any peer that can "
            "reach this port can run commands as this user (--insecure)",
            spec.name,
            addr,
        )
    port = listen(server, addr, spec.identity)
    try:
        bulk_port = await files.start_bulk()
    except OSError as e:
        where = f"{spec.host}:{spec.bulk_port or 'any port'}"
        raise ConfigError(f"cannot open the copy bulk port {where}: {e.strerror}") from e
    await server.start()
    log.info(
        "agent %s listening on %s:%d (%s), copy bulk port %d",
        spec.name,
        spec.host,
        port,
        "plain text" if spec.identity is None else "mutual TLS",
        bulk_port,
    )
    return _Running(server, channels, files, port, service, nodes)


def _sandboxes(sandbox: bool, state: Path | None) -> Host:
    """Detect the cgroups this agent may use, say once what it cannot give,
    and remove what a crashed agent left."""
    if not sandbox:
        host = Host.none("turned off by --no-sandbox", state)
        log.warning(
            "NO SANDBOX (--no-sandbox): commands are not put in cgroups; what escapes "
            "their process group (setsid, double forks) outlives a time limit or a cancel, "
            "and no CPU time or peak memory is measured"
        )
    else:
        host = Host.detect(state)
        (log.info if host.version else log.warning)("%s", host.describe())
    removed, killed = host.sweep()
    if removed:
        log.warning(
            "removed %d sandbox(es) of a previous agent (%d process(es) killed)", removed, killed
        )
    dirs, files, size = host.scratches.sweep()
    if dirs:
        log.warning(
            "removed %d scratch dir(s) of a previous agent: %d file(s), %.1f MiB freed",
            dirs, files, size / 2**20,
        )  # fmt: skip
    return host


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
    keepalive: Keepalive | None = None,
    sandbox: bool = True,
    state: Path | None = None,
) -> None:
    """Run one server per spec until SIGTERM/SIGINT; then kill every running
    command, stop the servers and return. With a controller, every agent
    registers with its facts and heartbeats until it stops. ``sandbox``
    False: no cgroups (benchmarks of the envelope's cost). ``state``: the
    agent's own directory (default $SHOAL_HOME/agent)."""
    keepalive = keepalive or Keepalive()
    # Finished runs are kept while their grant could still be replayed.
    runs = Runs(keep=2 * WINDOW)
    _log_setup()
    host = _sandboxes(sandbox, state)
    jobs = (state or shoal_home() / "agent") / "jobs"
    loop = asyncio.get_running_loop()
    _pidfd_child_watcher(loop)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    started: list[_Running] = []
    heartbeats: list[asyncio.Task[Any]] = []
    try:
        for spec in specs:
            started.append(await _start(spec, keepalive, runs, host, jobs))
        if on_ready is not None:
            on_ready([r.port for r in started])
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
                        host=host,
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
        for r in started:
            await r.service.jobs.close()
        for r in started:  # their calls end (CONTAINER_GONE) before the servers stop
            await r.nodes.close()
        tasks.kill_all()
        await runs.cancel_all()
        for r in started:  # before the servers' grace: a copy would go on meanwhile
            await r.files.close()  # no transfer is left half-written
        await asyncio.gather(*(r.server.stop(grace=1.0) for r in started), return_exceptions=True)
        tasks.kill_all()
        host.close()
        for r in started:
            with contextlib.suppress(Exception):
                await r.channels.close()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
