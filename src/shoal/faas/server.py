"""`shoal faas scheduler` as a gRPC server: the mini-faas Scheduler,
ResourceManager and APIServer services over a Scheduler and its Pool. With TLS only an
operator's or the controller's certificate may call: a function's handler is
code the agents will run."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import grpc

from shoal.core import tls
from shoal.core.keepalive import Keepalive
from shoal.core.wire.shoal.v1 import faas_pb2 as xpb
from shoal.core.wire.shoal.v1 import faas_pb2_grpc as xrpc
from shoal.errors import ConfigError, SchedulingError
from shoal.faas.front import APIServerService
from shoal.faas.nodepool import Pool
from shoal.faas.scheduler import Scheduler

log = logging.getLogger("shoal.faas")

ALLOWED = (tls.OPERATOR, tls.CONTROLLER)


async def _admit(context: grpc.aio.ServicerContext[Any, Any], secure: bool) -> None:
    if not secure:
        return
    auth = dict(context.auth_context())
    role = tls.peer_role(auth)
    if role not in ALLOWED:
        peer = tls.peer_name(auth) or context.peer()
        log.warning("refused a call from %s (role %s)", peer, role)
        await context.abort(
            grpc.StatusCode.PERMISSION_DENIED,
            f"only an operator or the controller may call the scheduler, not a {role} certificate",
        )


async def _abort(context: grpc.aio.ServicerContext[Any, Any], e: SchedulingError) -> None:
    await context.abort(getattr(grpc.StatusCode, e.status, grpc.StatusCode.UNKNOWN), e.message)


class SchedulerService(xrpc.SchedulerServicer):
    def __init__(self, scheduler: Scheduler, secure: bool) -> None:
        self.s, self.secure = scheduler, secure

    async def AcquireContainer(
        self, request: xpb.AcquireContainerRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> xpb.AcquireContainerReply:
        await _admit(context, self.secure)
        config = request.function_config if request.HasField("function_config") else None
        try:
            c, cold = await self.s.acquire(request.request_id, request.function_name, config)
        except SchedulingError as e:
            await _abort(context, e)
            raise
        d = c.node.desc
        return xpb.AcquireContainerReply(
            node_id=d.id,
            node_address=d.address,
            node_service_port=d.node_service_port,
            container_id=c.id,
            cold=cold,
        )

    async def ReturnContainer(
        self, request: xpb.ReturnContainerRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> xpb.ReturnContainerReply:
        await _admit(context, self.secure)
        try:
            self.s.release_call(
                request.request_id,
                request.container_id,
                duration_ns=request.duration_in_nanos,
                max_memory=request.max_memory_usage_in_bytes,
                error_code=request.error_code,
                error_message=request.error_message,
            )
        except SchedulingError as e:
            await _abort(context, e)
            raise
        return xpb.ReturnContainerReply()


class ResourceManagerService(xrpc.ResourceManagerServicer):
    """The pool, for a mini-faas scheduler of someone else's."""

    def __init__(self, pool: Pool, secure: bool) -> None:
        self.pool, self.secure = pool, secure

    async def ReserveNode(
        self, request: xpb.ReserveNodeRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> xpb.ReserveNodeReply:
        await _admit(context, self.secure)
        node = await self.pool.reserve()
        if node is None:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "no node left to reserve")
        return xpb.ReserveNodeReply(node=node)

    async def ReleaseNode(
        self, request: xpb.ReleaseNodeRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> xpb.ReleaseNodeReply:
        await _admit(context, self.secure)
        if request.id not in {n.id for n in self.pool.usage()}:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"node {request.id!r} is not reserved")
        await self.pool.release(request.id)
        return xpb.ReleaseNodeReply()

    async def GetNodesUsage(
        self, request: xpb.GetNodesUsageRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> xpb.GetNodesUsageReply:
        await _admit(context, self.secure)
        return xpb.GetNodesUsageReply(nodes=self.pool.usage())


@dataclass
class Served:
    server: grpc.aio.Server
    port: int


async def serve(
    scheduler: Scheduler,
    address: str,
    *,
    identity: tls.Identity | None,
    keepalive: Keepalive,
    resource_manager: Pool | None = None,
) -> Served:
    """Start the services on address (host:port; port 0 picks one); the
    scheduler must be started by the caller."""
    server = grpc.aio.server(options=keepalive.server_options())
    secure = identity is not None
    xrpc.add_SchedulerServicer_to_server(SchedulerService(scheduler, secure), server)
    xrpc.add_APIServerServicer_to_server(
        APIServerService(scheduler, lambda ctx: _admit(ctx, secure)), server
    )
    if resource_manager is not None:
        xrpc.add_ResourceManagerServicer_to_server(
            ResourceManagerService(resource_manager, secure), server
        )
    try:
        if identity is None:
            port = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, tls.server_credentials(identity))
    except RuntimeError:
        port = 0
    if port == 0:
        raise ConfigError(
            f"cannot listen on {address}: the port is in use or the address is not ours"
        )
    await server.start()
    return Served(server, port)
