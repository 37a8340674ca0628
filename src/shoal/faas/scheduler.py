"""The function scheduler: AcquireContainer / ReturnContainer over warm
containers on the agents' NodeService, nodes from a pool, keep-alive and
eviction by a Policy (the simulator's objects), memory-aware placement.

All state lives in one event loop and changes only between awaits, so there
are no locks and the accounting cannot race: a container's in-flight count
and a node's free memory change in the same step as the call they count.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc

from shoal.agent.containers import CORES_PER_GIB, MIN_CORES
from shoal.core.wire.shoal.v1 import faas_pb2 as xpb
from shoal.core.wire.shoal.v1 import faas_pb2_grpc as xrpc
from shoal.errors import SchedulingError
from shoal.faas.nodepool import Pool
from shoal.faas.policy import Policy

log = logging.getLogger("shoal.faas")

GONE = frozenset({"OOM", "TIMEOUT", "CONTAINER_GONE"})  # the agent removed the container
KEPT = frozenset({"FUNCTION_ERROR", "CONTAINER_BUSY"})  # the call failed, the container is fine
MAX_CAP = 8  # calls one container may be given at once
RAISE_AFTER = 4  # clean returns at a concurrency before trying one more
CLOSE_WAIT = 20.0  # seconds close() lets starts and removals in flight finish
RETURNED = 65536  # request ids remembered after their return (a second one is an error)


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
    removed: int = 0
    replaced: int = 0  # containers gone by OOM, time-out or their node's death
    wasted_gbs: float = 0.0  # idle memory-time of warm containers
    node_seconds: float = 0.0  # of nodes released so far
    peak_nodes: int = 0


Dial = Callable[[xpb.NodeDesc], Any]


def _fail(status: str, message: str) -> SchedulingError:
    return SchedulingError(status, message)


class Scheduler:
    def __init__(
        self,
        pool: Pool,
        policy: Policy,
        dial: Dial,
        *,
        functions: list[Function] | None = None,
        options: Options | None = None,
    ) -> None:
        self.pool, self.policy, self.dial = pool, policy, dial
        self.o = options or Options()
        if self.o.placement not in ("pack", "spread"):
            raise _fail("INVALID_ARGUMENT", f"unknown placement {self.o.placement!r}")
        self.known: dict[str, Function] = {}
        self.nodes: dict[str, Node] = {}
        self.held_since: dict[str, float] = {}
        self.calls: dict[str, Call] = {}
        self.returned: OrderedDict[str, None] = OrderedDict()
        self.stats = Stats()
        self.room = asyncio.Event()  # set whenever memory is freed or a node arrives
        self.tasks: set[asyncio.Task[Any]] = set()
        self.ids = itertools.count()
        self.memory: list[float] = []
        policy.bind(self.memory, self.o.cold_start_s)
        for f in functions or []:
            self.register(f)
        self.poller: asyncio.Task[None] | None = None
        self.closing = False

    # -- life

    async def start(self) -> None:
        for _ in range(self.o.nodes):
            if await self._reserve() is None:
                break
        self.poller = asyncio.create_task(self._poll())

    async def close(self) -> None:
        """Fail what waits, let containers being started and removed finish
        (bounded), then remove every container and release every node."""
        self.closing = True
        if self.poller is not None:
            self.poller.cancel()
        for fn in self.known.values():
            if fn.prewarm is not None:
                fn.prewarm.cancel()
            self._fail_waiters(fn, _fail("UNAVAILABLE", "the scheduler is stopping"))
        self.room.set()
        end = time.monotonic() + CLOSE_WAIT
        while self.tasks and (left := end - time.monotonic()) > 0:
            await asyncio.wait(list(self.tasks), timeout=left)
        for t in list(self.tasks):
            t.cancel()
        removals = [
            self._remove_call(c) for n in self.nodes.values() for c in list(n.containers.values())
        ]
        await asyncio.gather(*removals, return_exceptions=True)
        for node in list(self.nodes.values()):
            await self._release(node)

    def _spawn_task(self, coro: Any) -> None:
        t = asyncio.create_task(coro)
        self.tasks.add(t)
        t.add_done_callback(self.tasks.discard)

    # -- functions

    def register(self, f: Function) -> Function:
        """A function known by name, so calls need not describe it."""
        f.index = len(self.memory)
        self.memory.append(f.memory / 2**20)
        self.known[f.name] = f
        return f

    def function(self, name: str, config: xpb.FunctionConfig | None) -> Function:
        """The registered function, or one described by the request's config."""
        if not name:
            raise _fail("INVALID_ARGUMENT", "function_name is empty")
        f = self.known.get(name)
        given = config is not None and (config.handler or config.memory_in_bytes)
        if f is None:
            if not given:
                raise _fail("NOT_FOUND", f"unknown function {name!r} (and no function_config)")
            assert config is not None
            if not config.handler:
                raise _fail(
                    "INVALID_ARGUMENT", f"function {name!r}: function_config.handler is empty"
                )
            f = Function(name, config.handler, config.memory_in_bytes, config.timeout_in_ms)
        elif given and config is not None and config.memory_in_bytes not in (0, f.memory):
            raise _fail(
                "INVALID_ARGUMENT",
                f"function {name!r} has {f.memory} bytes registered, "
                f"the call asks {config.memory_in_bytes}",
            )
        if f.memory <= 0:
            raise _fail("INVALID_ARGUMENT", f"function {name!r}: memory_in_bytes must be > 0")
        biggest = self.pool.node_memory
        if f.memory > biggest:
            raise _fail(
                "INVALID_ARGUMENT",
                f"function {name!r} asks {f.memory / 2**20:.0f} MiB; "
                f"a node has {biggest / 2**20:.0f} MiB",
            )
        if f.timeout_ms <= 0:
            f.timeout_ms = 60_000
        if name not in self.known:
            self.register(f)
        return f

    # -- calls

    async def acquire(
        self, request_id: str, function_name: str, config: xpb.FunctionConfig | None = None
    ) -> tuple[Container, bool]:
        if not request_id:
            raise _fail("INVALID_ARGUMENT", "request_id is empty")
        held = self.calls.get(request_id)
        if held is not None:  # a retried Acquire: the same answer, counted once
            return held.container, held.cold
        if request_id in self.returned:
            raise _fail(
                "FAILED_PRECONDITION", f"request {request_id} was already served and returned"
            )
        fn = self.function(function_name, config)
        now = time.monotonic()
        since = fn.drop.get(fn.in_flight)
        c = self._warm(fn)
        self.policy.on_invoke(fn.index, now, c is None, None if since is None else now - since)
        fn.in_flight += 1
        cold = c is None
        if c is None:
            if fn.containers or fn.booting:  # demand beyond what is warm
                fn.pressed = True
            try:
                c = await self._wait(fn)
            except BaseException:
                self._done(fn)
                self.stats.errors += 1
                raise
        else:
            self._busy(c)
        if request_id in self.calls:  # two Acquires of one id raced: keep the first
            self._give_back(c)
            self._done(fn)
            return self.calls[request_id].container, self.calls[request_id].cold
        self.calls[request_id] = Call(c, cold)
        self.stats.acquired += 1
        self.stats.cold += cold
        return c, cold

    def _warm(self, fn: Function) -> Container | None:
        best = None
        for c in fn.containers.values():
            if c.in_flight < fn.cap and (best is None or c.in_flight < best.in_flight):
                best = c
                if c.in_flight == 0:
                    break
        return best

    def _busy(self, c: Container) -> None:
        if c.in_flight == 0 and c.idle_since is not None:
            self.stats.wasted_gbs += (time.monotonic() - c.idle_since) * c.fn.memory / 2**30
            c.idle_since = None
            if c.expiry is not None:
                c.expiry.cancel()
                c.expiry = None
        c.in_flight += 1
        c.until = None

    async def _wait(self, fn: Function) -> Container:
        fut: asyncio.Future[Container] = asyncio.get_running_loop().create_future()
        fn.waiters.append(fut)
        self._refill(fn)
        try:
            return await asyncio.wait_for(asyncio.shield(fut), fn.timeout_ms / 1000)
        except BaseException as e:
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                self._give_back(fut.result())  # it came as the wait ended
            if not isinstance(e, TimeoutError):
                raise
            raise _fail(
                "RESOURCE_EXHAUSTED",
                f"no container for {fn.name} within its time-out of {fn.timeout_ms} ms "
                f"({len(self.nodes)} node(s) held, none with {fn.memory / 2**20:.0f} MiB free)",
            ) from None
        finally:
            if fut in fn.waiters:
                fn.waiters.remove(fut)
            if not fut.done():
                fut.cancel()

    def _done(self, fn: Function) -> None:
        fn.in_flight -= 1
        fn.drop[fn.in_flight] = time.monotonic()

    def _give_back(self, c: Container) -> None:
        c.in_flight -= 1
        self._offer(c)

    def release_call(
        self,
        request_id: str,
        container_id: str,
        *,
        duration_ns: int = 0,
        max_memory: int = 0,
        error_code: str = "",
        error_message: str = "",
    ) -> None:
        """ReturnContainer."""
        call = self.calls.get(request_id)
        if call is None:
            if request_id in self.returned:
                raise _fail(
                    "FAILED_PRECONDITION", f"request {request_id} returned its container already"
                )
            raise _fail("NOT_FOUND", f"no container is held by request {request_id!r}")
        c = call.container
        if c.id != container_id:
            raise _fail(
                "INVALID_ARGUMENT",
                f"request {request_id} holds container {c.id}, not {container_id!r}",
            )
        del self.calls[request_id]
        self.returned[request_id] = None
        if len(self.returned) > RETURNED:
            self.returned.popitem(last=False)
        self.stats.returned += 1
        fn = c.fn
        self._done(fn)
        c.in_flight -= 1
        alive = c.id in fn.containers
        if error_code and error_code not in KEPT:
            if fn.cap > 1:
                log.info("%s: concurrency back to 1 after %s", fn.name, error_code)
            fn.cap, fn.clean = 1, 0
            if alive:
                self.stats.replaced += 1
                self._forget(c, remove=error_code not in GONE)
                self._refill(fn)
            return
        if self.o.learn:
            self._learn(fn, max_memory)
        if alive:
            self._offer(c)

    def _learn(self, fn: Function, max_memory: int) -> None:
        """One more call at once when each call leaves room for another in memory
        and the container's CPU is not the limit; back to 1 on OOM or time-out."""
        fn.peak = max(fn.peak, max_memory)
        fn.clean += 1
        if fn.cap >= MAX_CAP or fn.clean < RAISE_AFTER or fn.peak <= 0 or not fn.pressed:
            return
        per_call = fn.peak / fn.cap
        cores = max(MIN_CORES, CORES_PER_GIB * fn.memory / 2**30)  # the container's quota
        if per_call * (fn.cap + 1) <= 0.6 * fn.memory and fn.cpu_pct / 100 < 0.5 * cores:
            fn.cap += 1
            fn.clean = 0
            fn.pressed = False
            log.info("%s: %d calls per container (peak %d MiB)", fn.name, fn.cap, fn.peak >> 20)
            for c in list(fn.containers.values()):
                self._offer(c)

    def _offer(self, c: Container) -> None:
        """Hand a container with room to the function's oldest waiters; an idle
        one to the policy."""
        fn = c.fn
        while c.in_flight < fn.cap and fn.waiters:
            fut = fn.waiters.popleft()
            if fut.done():
                continue
            self._busy(c)
            fut.set_result(c)
        if c.in_flight == 0 and c.idle_since is None:
            self._idle(c)

    def _idle(self, c: Container) -> None:
        now = time.monotonic()
        c.idle_since = now
        if c.until is not None:  # pre-warmed, not used yet
            end = c.until
            c.until = None
            if end <= now:
                self._forget(c)
                return
            c.expiry = asyncio.get_running_loop().call_later(end - now, self._expire, c)
            return
        w = self.policy.on_idle(c.fn.index, now)
        if w.end <= 0 or w.end <= w.start:
            self._forget(c)
        elif w.start <= self.o.cold_start_s:
            if w.end != float("inf"):
                c.expiry = asyncio.get_running_loop().call_later(w.end, self._expire, c)
        else:
            self._forget(c)
            fn = c.fn
            if fn.prewarm is not None:
                fn.prewarm.cancel()
            at = w.start - self.o.cold_start_s
            fn.prewarm = asyncio.get_running_loop().call_later(at, self._prewarm, fn, now + w.end)

    def _expire(self, c: Container) -> None:
        c.expiry = None
        if c.in_flight == 0 and c.id in c.fn.containers:
            self._forget(c)

    def _prewarm(self, fn: Function, until: float) -> None:
        fn.prewarm = None
        if not fn.containers and not fn.booting:
            fn.booting += 1
            self._spawn_task(self._create(fn, until=until))

    def _refill(self, fn: Function) -> None:
        """Start containers for the waiters that no starting one will serve;
        counted as booting at once, so two calls in one step start one each."""
        while fn.booting * fn.cap < len(fn.waiters):
            fn.booting += 1
            self._spawn_task(self._create(fn))

    # -- containers

    async def _create(self, fn: Function, *, until: float | None = None) -> None:
        """Start a container of fn (counted in fn.booting by the caller)."""
        try:
            deadline = time.monotonic() + fn.timeout_ms / 1000
            while True:
                node = await self._room(fn.memory, deadline, evict=until is None)
                if node is None:
                    return  # the waiters time out and say why
                node.free -= fn.memory
                self._hold(node)
                try:
                    c = await self._create_on(node, fn)
                except SchedulingError as e:
                    node.free += fn.memory
                    self._settle(node)
                    self._fail_waiters(fn, e)
                    return
                except _NodeDown:
                    continue  # _node_down gave its memory back; try another
                break
        finally:
            fn.booting -= 1
        if self.closing:
            self._forget(c)
            return
        c.until = until
        self._offer(c)

    async def _create_on(self, node: Node, fn: Function) -> Container:
        req = xpb.CreateContainerRequest(
            request_id=f"create-{next(self.ids)}", name=fn.name, function_meta=fn.meta()
        )
        try:
            reply = await node.stub.CreateContainer(req, timeout=self.o.create_timeout_s)
        except grpc.aio.AioRpcError as e:
            if e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                log.warning("%s: node %s unreachable: %s", fn.name, node.desc.id, e.details())
                self._node_down(node)
                raise _NodeDown from None
            raise _fail(
                "FAILED_PRECONDITION", f"{fn.name}: {node.desc.id} cannot start it: {e.details()}"
            ) from None
        if node.desc.id not in self.nodes:  # released or dead while it started
            raise _NodeDown
        c = Container(reply.container_id, fn, node)
        node.containers[c.id] = c
        fn.containers[c.id] = c
        self.stats.created += 1
        return c

    def _fail_waiters(self, fn: Function, e: SchedulingError) -> None:
        while fn.waiters:
            w = fn.waiters.popleft()
            if not w.done():
                w.set_exception(e)

    def _forget(self, c: Container, *, remove: bool = True) -> None:
        """Take a container out of the books (its memory is free at once) and,
        unless the agent removed it already, remove it there."""
        fn, node = c.fn, c.node
        if fn.containers.pop(c.id, None) is None:
            return
        node.containers.pop(c.id, None)
        if c.idle_since is not None:
            self.stats.wasted_gbs += (time.monotonic() - c.idle_since) * fn.memory / 2**30
        if c.expiry is not None:
            c.expiry.cancel()
        node.free += fn.memory
        self.stats.removed += 1
        self.room.set()
        if remove and node.desc.id in self.nodes:
            self._spawn_task(self._remove_call(c))
        self._settle(node)

    async def _remove_call(self, c: Container) -> None:
        req = xpb.RemoveContainerRequest(request_id=f"remove-{next(self.ids)}", container_id=c.id)
        try:
            await c.node.stub.RemoveContainer(req, timeout=10)
        except grpc.aio.AioRpcError as e:
            if e.code() != grpc.StatusCode.NOT_FOUND:
                log.warning("remove %s on %s: %s", c.id, c.node.desc.id, e.details())

    # -- memory and nodes

    def _place(self, memory: int) -> Node | None:
        fits = [n for n in self.nodes.values() if n.free >= memory]
        if not fits:
            return None
        if self.o.placement == "pack":
            return min(fits, key=lambda n: n.free)
        return max(fits, key=lambda n: n.free)

    async def _room(self, memory: int, deadline: float, *, evict: bool) -> Node | None:
        while not self.closing:
            node = self._place(memory)
            if node is None and evict:
                node = self._evict_for(memory)
            if node is None and len(self.nodes) < self.o.max_nodes:
                node = await self._reserve()
                if node is not None and node.free < memory:
                    node = None
            if node is not None:
                return node
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.room.clear()
            try:
                await asyncio.wait_for(self.room.wait(), left)
            except TimeoutError:
                return None
        return None

    def _evict_for(self, memory: int) -> Node | None:
        idle = [c for n in self.nodes.values() for c in n.containers.values() if c.in_flight == 0]
        prio = {c: self.policy.priority(c.fn.index, c.idle_since or 0.0) for c in idle}
        for c in sorted(idle, key=lambda c: prio[c]):
            node = c.node
            self._forget(c)
            self.policy.on_evict(c.fn.index, prio[c], time.monotonic(), not c.fn.containers)
            if node.free >= memory:
                return node
        return None

    async def _reserve(self) -> Node | None:
        desc = await self.pool.reserve()
        if desc is None:
            return None
        node = Node(desc, self.dial(desc), desc.memory_in_bytes)
        self.nodes[desc.id] = node
        self.held_since[desc.id] = time.monotonic()
        self.stats.peak_nodes = max(self.stats.peak_nodes, len(self.nodes))
        log.info("reserved node %s (%s:%d)", desc.id, desc.address, desc.node_service_port)
        self.room.set()
        self._settle(node)
        return node

    def _hold(self, node: Node) -> None:
        if node.release is not None:
            node.release.cancel()
            node.release = None

    def _settle(self, node: Node) -> None:
        """An empty node above the minimum goes back after node_idle_s."""
        if node.containers or node.release is not None or node.desc.id not in self.nodes:
            return
        node.release = asyncio.get_running_loop().call_later(
            self.o.node_idle_s, lambda: self._spawn_task(self._release_if_empty(node))
        )

    async def _release_if_empty(self, node: Node) -> None:
        node.release = None
        if node.containers or len(self.nodes) <= self.o.min_nodes:
            return
        if node.free < node.desc.memory_in_bytes:
            return  # a container is starting on it
        await self._release(node)

    async def _release(self, node: Node) -> None:
        if self._drop(node):
            await self.pool.release(node.desc.id)
            log.info("released node %s", node.desc.id)

    def _drop(self, node: Node) -> bool:
        if self.nodes.get(node.desc.id) is not node:
            return False
        del self.nodes[node.desc.id]
        if node.release is not None:
            node.release.cancel()
        self.stats.node_seconds += time.monotonic() - self.held_since.pop(node.desc.id)
        return True

    def _node_down(self, node: Node) -> None:
        """A node that stopped answering: its containers are gone, its calls'
        returns are still taken, and what waited for them gets new ones."""
        if not self._drop(node):
            return
        log.warning("node %s is down; %d container(s) lost", node.desc.id, len(node.containers))
        touched = {c.fn for c in node.containers.values()}
        for c in list(node.containers.values()):
            self.stats.replaced += 1
            self._forget(c, remove=False)
        self._spawn_task(self.pool.release(node.desc.id, dead=True))
        for fn in touched:
            self._refill(fn)

    async def _poll(self) -> None:
        """GetStats on every node: CPU per container (for concurrency) and
        nodes that no longer answer."""
        while True:
            await asyncio.sleep(self.o.poll_s)
            nodes = list(self.nodes.values())
            answers = await asyncio.gather(
                *(
                    n.stub.GetStats(xpb.GetStatsRequest(), timeout=max(2.0, self.o.poll_s))
                    for n in nodes
                ),
                return_exceptions=True,
            )
            for node, a in zip(nodes, answers, strict=True):
                if isinstance(a, BaseException):
                    node.misses += 1
                    if node.misses >= 2:
                        self._node_down(node)
                    continue
                node.misses = 0
                for s in a.container_stats_list:
                    c = node.containers.get(s.container_id)
                    if c is None:
                        continue
                    if c.polled and c.in_flight:  # the first figure counts its start-up
                        c.fn.cpu_pct = max(c.fn.cpu_pct * 0.9, s.cpu_usage_pct)
                    c.polled = True

    # -- reports

    def usage(self) -> dict[str, Any]:
        return {
            "nodes": len(self.nodes),
            "containers": sum(len(n.containers) for n in self.nodes.values()),
            "in_flight": sum(
                c.in_flight for n in self.nodes.values() for c in n.containers.values()
            ),
            "calls": len(self.calls),
            "functions": {
                f.name: {
                    "containers": len(f.containers),
                    "in_flight": f.in_flight,
                    "concurrency": f.cap,
                }
                for f in self.known.values()
            },
            **self.stats.__dict__,
        }


class _NodeDown(Exception):
    pass


def dial_with(channel_of: Callable[[str, str], grpc.aio.Channel]) -> Dial:
    """A Dial from a function that opens a channel to (node name, host:port)."""

    def dial(desc: xpb.NodeDesc) -> Any:
        return xrpc.NodeServiceStub(channel_of(desc.id, f"{desc.address}:{desc.node_service_port}"))

    return dial
