"""The scheduler's nodes and the containers on them: placement, eviction,
reservation and release, removal, and nodes that stop answering (GetStats
polled). A mixin of Scheduler, which owns the calls."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from typing import Any

import grpc

from shoal.core.wire.shoal.v1 import faas_pb2 as xpb
from shoal.errors import SchedulingError
from shoal.faas.nodepool import Pool
from shoal.faas.policy import Policy
from shoal.faas.state import Container, Dial, Function, Node, NodeDown, Options, Stats, fail

log = logging.getLogger("shoal.faas")


class Holding:
    pool: Pool
    policy: Policy
    dial: Dial
    o: Options
    nodes: dict[str, Node]
    held_since: dict[str, float]
    stats: Stats
    starts: deque[float]  # each CreateContainer's seconds, for the replay's simulator
    room: asyncio.Event
    in_line: deque[object]  # starts waiting for memory, oldest first
    ids: itertools.count[int]
    closing: bool

    def _spawn_task(self, coro: Any) -> None:
        raise NotImplementedError

    def _refill(self, fn: Function) -> None:
        raise NotImplementedError

    def _offer(self, c: Container) -> None:
        raise NotImplementedError

    # -- containers

    async def _create(self, fn: Function, *, until: float | None = None) -> None:
        """Start a container of fn (counted in fn.booting by the caller)."""
        try:
            deadline = time.monotonic() + fn.timeout_ms / 1000
            while True:
                node = await self._room(fn, deadline, evict=until is None)
                if node is None:
                    return  # the waiters time out and say why
                node.free -= fn.memory
                node.spares -= 1  # until the next poll says how many wait
                self._hold(node)
                try:
                    c = await self._create_on(node, fn)
                except SchedulingError as e:
                    node.free += fn.memory
                    self._settle(node)
                    self._fail_waiters(fn, e)
                    return
                except NodeDown:
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
        started = time.monotonic()
        try:
            reply = await node.stub.CreateContainer(req, timeout=self.o.create_timeout_s)
        except grpc.aio.AioRpcError as e:
            if e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                log.warning("%s: node %s unreachable: %s", fn.name, node.desc.id, e.details())
                self._node_down(node)
                raise NodeDown from None
            raise fail(
                "FAILED_PRECONDITION", f"{fn.name}: {node.desc.id} cannot start it: {e.details()}"
            ) from None
        if node.desc.id not in self.nodes:  # released or dead while it started
            raise NodeDown
        c = Container(reply.container_id, fn, node)
        node.containers[c.id] = c
        fn.containers[c.id] = c
        self.stats.created += 1
        took = time.monotonic() - started
        self.stats.create_s += took
        self.starts.append(took)
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

    def _place(self, fn: Function) -> Node | None:
        """A node with a spare worker waiting first (a start of milliseconds,
        not an interpreter's), then function-affine (a node that runs it has
        its code and its page cache warm), then the fullest (pack) or
        emptiest (spread) it fits."""
        fits = [n for n in self.nodes.values() if n.free >= fn.memory and not n.draining]
        if not fits:
            return None
        sign = 1 if self.o.placement == "pack" else -1
        return min(fits, key=lambda n: (n.spares <= 0, not _runs(n, fn), sign * n.free))

    async def _room(self, fn: Function, deadline: float, *, evict: bool) -> Node | None:
        node = await self._fit(fn, evict=evict)
        if node is not None or self.closing:
            return node
        # Waiting for memory: the oldest start first, as the simulator's retry,
        # so that smaller starts cannot take every freed MiB from a larger one.
        ticket = object()
        self.in_line.append(ticket)
        try:
            while not self.closing:
                left = deadline - time.monotonic()
                # out of time, or the other starts of fn serve its calls (as the simulator)
                if left <= 0 or (fn.booting - 1) * fn.cap >= len(fn.waiters):
                    return None
                self.room.clear()
                try:
                    await asyncio.wait_for(self.room.wait(), left)
                except TimeoutError:
                    return None
                if self.in_line[0] is ticket and (node := await self._fit(fn, evict=evict)):
                    return node
            return None
        finally:
            self.in_line.remove(ticket)
            self.room.set()  # the next in line may fit now

    async def _fit(self, fn: Function, *, evict: bool) -> Node | None:
        node = self._place(fn)
        if node is None and evict:
            node = self._evict_for(fn.memory)
        if node is None and len(self.nodes) < self.o.max_nodes:
            node = await self._reserve()
            if node is not None and node.free < fn.memory:
                node = None
        return node

    def _evict_for(self, memory: int) -> Node | None:
        idle = [
            c
            for n in self.nodes.values()
            if not n.draining
            for c in n.containers.values()
            if c.in_flight == 0
        ]
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
            0.0 if node.draining else self.o.node_idle_s,
            lambda: self._spawn_task(self._release_if_empty(node)),
        )

    async def _release_if_empty(self, node: Node) -> None:
        node.release = None
        if node.containers or (len(self.nodes) <= self.o.min_nodes and not node.draining):
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

    def _drain(self, node: Node) -> None:
        """The pool wants the node back: no new container goes there, its idle
        ones go now, its busy ones when their calls return, then it is
        released (and another reserved as calls need one)."""
        if node.draining or self.nodes.get(node.desc.id) is not node:
            return
        node.draining = True
        log.info("node %s leaves the pool; draining it", node.desc.id)
        for c in list(node.containers.values()):
            if c.in_flight == 0:
                self._forget(c)
        self._settle(node)
        self.room.set()

    async def _poll(self) -> None:
        """GetStats on every node: CPU per container (for concurrency) and
        nodes that no longer answer; nodes the pool wants back are drained."""
        while True:
            await asyncio.sleep(self.o.poll_s)
            try:
                for name in await self.pool.leaving(list(self.nodes)):
                    self._drain(self.nodes[name])
            except Exception as e:  # the pool's source is down: keep what is held
                log.warning("node pool: %s", e)
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
                node.misses, node.spares = 0, a.node_stats.spares
                for s in a.container_stats_list:
                    c = node.containers.get(s.container_id)
                    if c is None:
                        continue
                    if c.polled and c.in_flight:  # the first figure counts its start-up
                        c.fn.cpu_pct = max(c.fn.cpu_pct * 0.9, s.cpu_usage_pct)
                    c.polled = True


def _runs(node: Node, fn: Function) -> bool:
    return any(c.fn is fn for c in node.containers.values())
