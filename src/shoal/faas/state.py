"""The scheduler's books: functions, nodes, containers and calls, what it
was configured with and what it counted."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc

from shoal.core.wire.shoal.v1 import faas_pb2 as xpb
from shoal.core.wire.shoal.v1 import faas_pb2_grpc as xrpc
from shoal.errors import SchedulingError

GONE = frozenset({"OOM", "TIMEOUT", "CONTAINER_GONE"})  # the agent removed the container
KEPT = frozenset({"FUNCTION_ERROR", "CONTAINER_BUSY"})  # the call failed, the container is fine
MAX_CAP = 8  # calls one container may be given at once
STARTS_KEPT = 100_000  # CreateContainer times a scheduler keeps (the replay's simulator)


@dataclass
class Options:
    nodes: int = 10  # reserved at the start (or as many as the pool has)
    max_nodes: int = 20
    min_nodes: int = 1
    node_idle_s: float = 60.0  # an empty node above min_nodes is released after this
    cold_start_s: float = 1.0  # the policies' estimate of a container's start
    placement: str = "pack"  # pack: the fullest node it fits; spread: the emptiest
    learn: bool = True  # per-function concurrency from observed memory and CPU
    poll_s: float = 1.0  # GetStats per node: CPU per container, dead nodes
    create_timeout_s: float = 30.0


@dataclass(eq=False)
class Function:
    name: str
    handler: str
    memory: int  # bytes
    timeout_ms: int
    code_dir: str = ""
    index: int = 0  # the policy's function number
    cap: int = 1  # calls a container is given at once (learned)
    clean: int = 0  # clean returns since cap last changed
    peak: int = 0  # most memory a container of it was seen to use
    cpu_pct: float = 0.0  # most CPU a container was seen to use, % of one core
    pressed: bool = False  # a call found no warm room since cap last changed
    in_flight: int = 0
    booting: int = 0
    containers: dict[str, Container] = field(default_factory=dict)
    waiters: deque[asyncio.Future[Container]] = field(default_factory=deque)
    drop: dict[int, float] = field(default_factory=dict)  # in-flight count -> when it fell to it
    prewarm: asyncio.TimerHandle | None = None
    prewarm_to: int = 0  # containers it held when its last went to be pre-warmed

    def level(self, c: Container) -> int:
        """The policy's level for ``c`` gone idle: the calls its function's
        other containers take at once (see Policy.on_idle)."""
        return self.cap * (len(self.containers) - 1)

    def meta(self, concurrency: int = MAX_CAP) -> xpb.FunctionMeta:
        return xpb.FunctionMeta(
            function_name=self.name,
            handler=self.handler,
            timeout_in_ms=self.timeout_ms,
            memory_in_bytes=self.memory,
            code_dir=self.code_dir,
            concurrency=concurrency,
        )


@dataclass(eq=False)
class Node:
    desc: xpb.NodeDesc
    stub: Any  # NodeServiceStub
    free: int
    containers: dict[str, Container] = field(default_factory=dict)
    release: asyncio.TimerHandle | None = None
    misses: int = 0  # GetStats polls in a row that failed
    draining: bool = False  # the pool wants it back: nothing new, released once empty
    spares: int = 0  # spare workers it said wait (GetStats), less the starts since


@dataclass(eq=False)
class Container:
    id: str
    fn: Function
    node: Node
    in_flight: int = 0
    idle_since: float | None = None
    expiry: asyncio.TimerHandle | None = None
    until: float | None = None  # pre-warmed: kept idle until then
    polled: bool = False  # GetStats has reported it once


@dataclass
class Call:
    container: Container
    cold: bool


@dataclass
class Stats:
    acquired: int = 0
    cold: int = 0
    returned: int = 0
    errors: int = 0  # calls that got no container
    created: int = 0
    create_s: float = 0.0  # CreateContainer time, summed over the containers made
    removed: int = 0
    replaced: int = 0  # containers gone by OOM, time-out or their node's death
    wasted_gbs: float = 0.0  # idle memory-time of warm containers
    node_seconds: float = 0.0  # of nodes released so far
    peak_nodes: int = 0


Dial = Callable[[xpb.NodeDesc], Any]


def fail(status: str, message: str) -> SchedulingError:
    return SchedulingError(status, message)


class NodeDown(Exception):
    """The node stopped answering while a container was being made on it."""


def dial_with(channel_of: Callable[[str, str], grpc.aio.Channel]) -> Dial:
    """A Dial from a function that opens a channel to (node name, host:port)."""

    def dial(desc: xpb.NodeDesc) -> Any:
        return xrpc.NodeServiceStub(channel_of(desc.id, f"{desc.address}:{desc.node_service_port}"))

    return dial
