"""The function scheduler: AcquireContainer / ReturnContainer over warm
containers on the agents' NodeService, nodes from a pool, keep-alive and
eviction by a Policy (the simulator's objects), memory-aware placement.

All state lives in one event loop and changes only between awaits, so there
are no locks and the accounting cannot race: a container's in-flight count
and a node's free memory change in the same step as the call they count.
The books are in faas/state.py, nodes and containers in faas/holding.py."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import OrderedDict, deque
from typing import Any

from shoal.core.wire.shoal.v1 import faas_pb2 as xpb
from shoal.faas.concurrency import room_for
from shoal.faas.holding import Holding
from shoal.faas.nodepool import Pool
from shoal.faas.policy import Policy
from shoal.faas.state import (
    GONE,
    KEPT,
    MAX_CAP,
    STARTS_KEPT,
    Call,
    Container,
    Dial,
    Function,
    Node,
    Options,
    Stats,
    dial_with,
    fail,
)

__all__ = ["MAX_CAP", "Function", "Options", "Scheduler", "dial_with"]

log = logging.getLogger("shoal.faas")

RAISE_AFTER = 1  # clean returns at a concurrency before trying one more
CLOSE_WAIT = 20.0  # seconds close() lets starts and removals in flight finish
RETURNED = 65536  # request ids remembered after their return (a second one is an error)


class Scheduler(Holding):
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
            raise fail("INVALID_ARGUMENT", f"unknown placement {self.o.placement!r}")
        self.known: dict[str, Function] = {}
        self.nodes: dict[str, Node] = {}
        self.held_since: dict[str, float] = {}
        self.calls: dict[str, Call] = {}
        self.returned: OrderedDict[str, None] = OrderedDict()
        self.stats, self.starts, self.in_line = Stats(), deque[float](maxlen=STARTS_KEPT), deque()
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
            self._fail_waiters(fn, fail("UNAVAILABLE", "the scheduler is stopping"))
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
        await self.pool.close()

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
            raise fail("INVALID_ARGUMENT", "function_name is empty")
        f = self.known.get(name)
        given = config is not None and (config.handler or config.memory_in_bytes)
        if f is None:
            if not given:
                raise fail("NOT_FOUND", f"unknown function {name!r} (and no function_config)")
            assert config is not None
            if not config.handler:
                raise fail(
                    "INVALID_ARGUMENT", f"function {name!r}: function_config.handler is empty"
                )
            f = Function(name, config.handler, config.memory_in_bytes, config.timeout_in_ms)
        elif given and config is not None and config.memory_in_bytes not in (0, f.memory):
            raise fail(
                "INVALID_ARGUMENT",
                f"function {name!r} has {f.memory} bytes registered, "
                f"the call asks {config.memory_in_bytes}",
            )
        elif given and config is not None and config.handler not in ("", f.handler):
            raise fail(
                "INVALID_ARGUMENT",
                f"function {name!r} has handler {f.handler!r}, the call names {config.handler!r}",
            )
        if f.memory <= 0:
            raise fail("INVALID_ARGUMENT", f"function {name!r}: memory_in_bytes must be > 0")
        biggest = self.pool.node_memory
        if f.memory > biggest:
            raise fail(
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
            raise fail("INVALID_ARGUMENT", "request_id is empty")
        held = self.calls.get(request_id)
        if held is not None:  # a retried Acquire: the same answer, counted once
            return held.container, held.cold
        if request_id in self.returned:
            raise fail(
                "FAILED_PRECONDITION", f"request {request_id} was already served and returned"
            )
        fn = self.function(function_name, config)
        now = time.monotonic()
        gap = None if (since := fn.drop.get(fn.in_flight)) is None else now - since
        c = self._warm(fn)
        cold = c is None
        self.policy.on_invoke(fn.index, now, cold, gap, fn.in_flight)
        fn.in_flight += 1
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
            raise fail(
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
                raise fail(
                    "FAILED_PRECONDITION", f"request {request_id} returned its container already"
                )
            raise fail("NOT_FOUND", f"no container is held by request {request_id!r}")
        c = call.container
        if c.id != container_id:
            raise fail(
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
        """Raise calls per container to what memory and CPU leave room for,
        after RAISE_AFTER clean returns while calls found no room; back to 1
        on OOM or time-out (elsewhere)."""
        fn.peak = max(fn.peak, max_memory)
        fn.clean += 1
        if fn.cap >= MAX_CAP or fn.clean < RAISE_AFTER or not fn.pressed:
            return
        cap = room_for(fn)
        if cap > fn.cap:
            fn.cap, fn.clean, fn.pressed = cap, 0, False
            log.info("%s: %d calls per container (peak %d MiB)", fn.name, fn.cap, fn.peak >> 20)
            for c in list(fn.containers.values()):
                self._offer(c)

    def _offer(self, c: Container) -> None:
        """Hand a container with room to the function's oldest waiters; an idle
        one to the policy."""
        fn = c.fn
        if c.id not in fn.containers:
            return  # forgotten meanwhile: never hand out a container that is gone
        while c.in_flight < fn.cap and fn.waiters:
            fut = fn.waiters.popleft()
            if fut.done():
                continue
            self._busy(c)
            fut.set_result(c)
        if c.in_flight == 0 and c.idle_since is None:
            if c.node.draining:
                self._forget(c)
                return
            self._idle(c)

    def _idle(self, c: Container) -> None:
        now = time.monotonic()
        c.idle_since = now
        self.room.set()  # a start waiting for memory may evict it now
        if c.until is not None:  # pre-warmed, not used yet
            end = c.until
            c.until = None
            if end <= now:
                self._forget(c)
                return
            c.expiry = asyncio.get_running_loop().call_later(end - now, self._expire, c)
            return
        w = self.policy.on_idle(c.fn.index, now, c.fn.level(c))
        if w.end <= 0 or w.end <= w.start:
            self._forget(c)
        elif w.start <= self.o.cold_start_s or c.fn.in_flight > 0:  # mid-burst: keep, see simulate
            if w.end != float("inf"):
                c.expiry = asyncio.get_running_loop().call_later(w.end, self._expire, c)
        else:
            fn = c.fn
            fn.prewarm_to = len(fn.containers) + fn.booting  # what its burst held
            self._forget(c)
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
        for _ in range(fn.prewarm_to - len(fn.containers) - fn.booting):
            fn.booting += 1
            self._spawn_task(self._create(fn, until=until))

    def _refill(self, fn: Function) -> None:
        """Start containers for the waiters that no starting one will serve;
        counted as booting at once, so two calls in one step start one each."""
        while fn.booting * fn.cap < len(fn.waiters):
            fn.booting += 1
            self._spawn_task(self._create(fn))

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
