"""The APIServer front of `shoal faas scheduler`: call a function by name
(InvokeFunction: acquire, invoke on the node, return, in one call) and list
the functions it knows, for trying the platform by hand."""

from __future__ import annotations

import time
import uuid
from typing import Any

import grpc

from shoal.core.wire.shoal.v1 import faas_pb2 as xpb
from shoal.core.wire.shoal.v1 import faas_pb2_grpc as xrpc
from shoal.errors import SchedulingError
from shoal.faas.access import abort, admit
from shoal.faas.client import Invocation, call_node
from shoal.faas.scheduler import Scheduler


class APIServerService(xrpc.APIServerServicer):
    def __init__(self, scheduler: Scheduler, secure: bool) -> None:
        self.s, self.secure = scheduler, secure

    async def InvokeFunction(
        self, request: xpb.ApiInvokeRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> xpb.ApiInvokeReply:
        await admit(context, self.secure)
        inv = Invocation(uuid.uuid4().hex)
        t0 = time.perf_counter_ns()
        try:
            c, inv.cold = await self.s.acquire(inv.request_id, request.function_name)
        except SchedulingError as e:
            await abort(context, e)
        inv.scheduling_ns = time.perf_counter_ns() - t0
        inv.node, inv.container = c.node.desc.id, c.id
        await call_node(c.node.stub, inv, request.event)
        self.s.release_call(
            inv.request_id,
            c.id,
            duration_ns=inv.duration_ns,
            max_memory=inv.max_memory,
            error_code=inv.error_code,
            error_message=inv.error_message,
        )
        return xpb.ApiInvokeReply(
            body=inv.body,
            function_log=inv.log,
            duration_in_nanos=inv.duration_ns,
            max_memory_usage_in_bytes=inv.max_memory,
            error_code=inv.error_code,
            error_message=inv.error_message,
            node_id=inv.node,
            container_id=inv.container,
            cold=inv.cold,
            scheduling_in_nanos=inv.scheduling_ns,
        )

    async def ListFunctions(
        self, request: xpb.ListFunctionsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> xpb.ListFunctionsReply:
        await admit(context, self.secure)
        return xpb.ListFunctionsReply(
            functions=[
                xpb.FunctionInfo(
                    function_name=f.name,
                    handler=f.handler,
                    memory_in_bytes=f.memory,
                    timeout_in_ms=f.timeout_ms,
                    containers=len(f.containers),
                    in_flight=f.in_flight,
                    concurrency=f.cap,
                )
                for f in sorted(self.s.known.values(), key=lambda f: f.name)
            ]
        )
