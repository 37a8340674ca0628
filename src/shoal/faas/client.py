"""What a mini-faas API server does per call: AcquireContainer from the
scheduler, InvokeFunction on the node it names, ReturnContainer with what
the node reported. `shoal faas invoke`, replay and the benchmarks use it."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import grpc

from shoal.core import tls
from shoal.core.config import Settings
from shoal.core.wire.shoal.v1 import faas_pb2 as xpb
from shoal.core.wire.shoal.v1 import faas_pb2_grpc as xrpc
from shoal.errors import SchedulingError
from shoal.fanout.client import client_credentials
from shoal.tree.channels import Channels

ADDRESS_FILE = "faas/scheduler.addr"  # under $SHOAL_HOME, written by a running scheduler


@dataclass
class Invocation:
    request_id: str
    node: str = ""
    container: str = ""
    cold: bool = False
    scheduling_ns: int = 0  # AcquireContainer as the caller saw it
    duration_ns: int = 0  # the function, as the node measured it
    max_memory: int = 0
    body: bytes = b""
    log: str = ""
    error_code: str = ""
    error_message: str = ""

    @property
    def ok(self) -> bool:
        return not self.error_code


def scheduler_address(settings: Settings, given: str | None) -> str:
    if given:
        return given
    f = settings.home / ADDRESS_FILE
    if not f.exists():
        raise SchedulingError(
            "UNAVAILABLE", f"no scheduler running here ({f} is absent): pass --scheduler HOST:PORT"
        )
    return f.read_text().strip()


class Client:
    def __init__(self, address: str, settings: Settings) -> None:
        self.channels = Channels(client_credentials(settings), settings.keepalive)
        # the scheduler serves with the operator's certificate, whose name is tls.CLIENT_NAME
        ch = self.channels.channel(tls.CLIENT_NAME, address)
        self.scheduler = xrpc.SchedulerStub(ch)
        self.front = xrpc.APIServerStub(ch)

    async def close(self) -> None:
        await self.channels.close()

    async def acquire(
        self, function: str, request_id: str, config: xpb.FunctionConfig | None = None
    ) -> xpb.AcquireContainerReply:
        req = xpb.AcquireContainerRequest(request_id=request_id, function_name=function)
        if config is not None:
            req.function_config.CopyFrom(config)
        try:
            reply: xpb.AcquireContainerReply = await self.scheduler.AcquireContainer(req)
        except grpc.aio.AioRpcError as e:
            raise _from_scheduler(e) from None
        return reply

    async def give_back(self, inv: Invocation) -> None:
        req = xpb.ReturnContainerRequest(
            request_id=inv.request_id,
            container_id=inv.container,
            duration_in_nanos=inv.duration_ns,
            max_memory_usage_in_bytes=inv.max_memory,
            error_code=inv.error_code,
            error_message=inv.error_message,
        )
        try:
            await self.scheduler.ReturnContainer(req)
        except grpc.aio.AioRpcError as e:
            raise _from_scheduler(e) from None

    async def invoke(
        self,
        function: str,
        event: bytes = b"",
        *,
        request_id: str | None = None,
        config: xpb.FunctionConfig | None = None,
    ) -> Invocation:
        inv = Invocation(request_id or uuid.uuid4().hex)
        t0 = time.perf_counter_ns()
        a = await self.acquire(function, inv.request_id, config)
        inv.scheduling_ns = time.perf_counter_ns() - t0
        inv.node, inv.container, inv.cold = a.node_id, a.container_id, a.cold
        node: Any = xrpc.NodeServiceStub(
            self.channels.channel(a.node_id, f"{a.node_address}:{a.node_service_port}")
        )
        await call_node(node, inv, event)
        await self.give_back(inv)
        return inv

    async def list_functions(self) -> list[xpb.FunctionInfo]:
        try:
            reply = await self.front.ListFunctions(xpb.ListFunctionsRequest())
        except grpc.aio.AioRpcError as e:
            raise _from_scheduler(e) from None
        return list(reply.functions)


def _from_scheduler(e: grpc.aio.AioRpcError) -> SchedulingError:
    return SchedulingError(e.code().name, f"scheduler: {e.details()}")


async def call_node(node: Any, inv: Invocation, event: bytes) -> None:
    """InvokeFunction on the node's container named in inv; fills in what the
    node reported. A call that cannot reach its container ends CONTAINER_GONE,
    so that the scheduler forgets it."""
    req = xpb.InvokeFunctionRequest(
        request_id=inv.request_id, container_id=inv.container, event=event
    )
    body: list[bytes] = []
    try:
        async for part in node.InvokeFunction(req):
            kind = part.WhichOneof("part")
            if kind == "header":
                inv.max_memory = part.header.max_mem_usage_in_bytes
                inv.log = part.header.function_log
            elif kind == "body":
                body.append(part.body)
            elif kind == "footer":
                inv.duration_ns = part.footer.duration_in_nanos
                inv.error_code = part.footer.error_code
                inv.error_message = part.footer.error_message
    except grpc.aio.AioRpcError as e:
        if e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:  # busy: the container is fine
            inv.error_code = "CONTAINER_BUSY"
        else:
            inv.error_code = "CONTAINER_GONE"
        inv.error_message = f"{inv.node}: {e.details()}"
    inv.body = b"".join(body)
