"""`shoal faas scheduler` as a gRPC server: the mini-faas Scheduler,
ResourceManager and APIServer services over a Scheduler and its Pool; who
may call them is faas/access.py's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc

from shoal.core import tls
from shoal.core.keepalive import Keepalive
from shoal.core.wire.shoal.v1 import faas_pb2 as xpb
from shoal.core.wire.shoal.v1 import faas_pb2_grpc as xrpc
from shoal.errors import SchedulingError
from shoal.faas.access import abort, admit
from shoal.faas.front import APIServerService
from shoal.faas.nodepool import Pool
from shoal.faas.scheduler import Scheduler
from shoal.tree.channels import listen


class SchedulerService(xrpc.SchedulerServicer):
    def __init__(self, scheduler: Scheduler, secure: bool) -> None:
        self.s, self.secure = scheduler, secure

    async def AcquireContainer(
        self, request: xpb.AcquireContainerRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> xpb.AcquireContainerReply:
        await admit(context, self.secure)
        config = request.function_config if request.HasField("function_config") else None
        try:
            c, cold = await self.s.acquire(request.request_id, request.function_name, config)
        except SchedulingError as e:
            await abort(context, e)
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
        await admit(context, self.secure)
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
            await abort(context, e)
        return xpb.ReturnContainerReply()


class ResourceManagerService(xrpc.ResourceManagerServicer):
    """The pool, for a mini-faas scheduler of someone else's."""

    def __init__(self, pool: Pool, secure: bool) -> None:
        self.pool, self.secure = pool, secure

    async def ReserveNode(
        self, request: xpb.ReserveNodeRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> xpb.ReserveNodeReply:
        await admit(context, self.secure)
        node = await self.pool.reserve()
        if node is None:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "no node left to reserve")
        return xpb.ReserveNodeReply(node=node)

    async def ReleaseNode(
        self, request: xpb.ReleaseNodeRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> xpb.ReleaseNodeReply:
        await admit(context, self.secure)
        if request.id not in {n.id for n in self.pool.usage()}:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"node {request.id!r} is not reserved")
        await self.pool.release(request.id)
        return xpb.ReleaseNodeReply()

    async def GetNodesUsage(
        self, request: xpb.GetNodesUsageRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> xpb.GetNodesUsageReply:
        await admit(context, self.secure)
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
    xrpc.add_APIServerServicer_to_server(APIServerService(scheduler, secure), server)
    if resource_manager is not None:
        xrpc.add_ResourceManagerServicer_to_server(
            ResourceManagerService(resource_manager, secure), server
        )
    port = listen(server, address, identity)
    await server.start()
    return Served(server, port)
