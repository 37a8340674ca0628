"""A discrete-event simulation of a function platform on a trace: nodes of
fixed usable memory reserved and released, containers started (cold, as
long as faas/starts.py says), kept or pre-warmed as a policy says, calls
queued while no memory is free and failed after their time-out. One call per
container as mini-faas's baseline, or ``max_calls`` learned as the real
scheduler learns them (after ``raise_after`` clean returns while calls found
no room), for functions light enough for that many, as the replay's are."""

from __future__ import annotations

import heapq
import math
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from shoal.faas.metrics import Result
from shoal.faas.model import Trace
from shoal.faas.policy import Policy
from shoal.faas.starts import Starts

READY, END, EXPIRE, PREWARM, NODE, RELEASE = range(6)


@dataclass(frozen=True)
class Config:
    node_mb: float = 3072.0  # usable of 4 GB
    node_vcpu: float = 2.0  # CPU follows memory: 0.67 vCPU/GB (not modelled beyond that)
    nodes: int = 10  # held at the start
    max_nodes: int = 20
    min_nodes: int = 1  # never released below this
    reserve_s: float = 30.0  # a reserved node is usable after this
    node_idle_s: float = 60.0  # an empty node is released after this
    headroom_mb: float = 1024.0  # free memory kept by reserving a node ahead
    cold_start: float = 1.0  # container start, s (0.4-4 in mini-faas accounts)
    policy_cold_start: float | None = None  # what the policy takes it for; None: cold_start
    starts: tuple[float, ...] = ()  # measured starts, taken in turn instead of cold_start
    spares: int = 0  # spare workers per node (agent/spares.py) modelled; 0: none
    spare_start: float = 0.005  # a start from a spare, s
    timeout: float = 60.0  # a call waiting longer fails
    placement: str = "first-fit"  # or "pack": the fullest node it fits
    max_calls: int = 1  # calls a container is given at once once learned (room for that many)
    raise_after: int = 1  # clean returns before one more


class _Node:
    __slots__ = ("count", "empty", "free", "id", "since")

    def __init__(self, i: int, free: float, since: float) -> None:
        self.id, self.free, self.count, self.since, self.empty = i, free, 0, since, since


class _Box:
    __slots__ = ("calls", "fn", "gen", "idle_since", "mb", "node", "prio", "state", "until")

    def __init__(self, fn: int, node: _Node, mb: float) -> None:
        self.fn, self.node, self.mb = fn, node, mb
        self.state, self.idle_since, self.gen, self.prio = "boot", 0.0, 0, 0.0
        self.calls = 0
        self.until: float | None = None


class Simulator:
    def __init__(self, trace: Trace, policy: Policy, config: Config | None = None) -> None:
        self.t, self.p, self.c = trace, policy, config or Config()
        self.starts = Starts(self.c.cold_start, self.c.starts, self.c.spares, self.c.spare_start)
        self.mem = [f.memory_mb for f in trace.functions]
        pc = self.c.policy_cold_start
        self.guess = self.c.cold_start if pc is None else pc  # as a scheduler's Options say
        policy.bind(self.mem, self.guess)
        nf = len(trace.functions)
        self.idle: list[dict[_Box, None]] = [{} for _ in range(nf)]
        self.all_idle: dict[_Box, None] = {}
        self.queue: list[deque[int]] = [deque() for _ in range(nf)]
        self.booting, self.inflight, self.retrying = [0] * nf, [0] * nf, False
        self.held = [0] * nf  # containers of each function
        self.room: list[dict[_Box, None]] = [{} for _ in range(nf)]  # busy, not full
        self.cap, self.clean, self.pressed = [1] * nf, [0] * nf, [False] * nf
        # when the function's calls last fell to k: the idle gap a call finds at k
        self.drop: list[dict[int, float]] = [{} for _ in range(nf)]
        self.prewarm_at: list[float] = [-1.0] * nf
        self.prewarm_to = [0] * nf  # containers the function held when the last went
        self.waiting: deque[int] = deque()  # functions short of a container for lack of memory
        self.heap: list[tuple[float, int, int, object, float]] = []
        self.seq = 0
        self.nodes: list[_Node] = [_Node(i, self.c.node_mb, 0.0) for i in range(self.c.nodes)]
        self.next_node, self.pending, self.now, self.held_mb = self.c.nodes, 0, 0.0, 0.0
        self.r = Result(policy.name, calls=len(trace))
        self.r.rt_by_fn = np.zeros(nf)
        self.r.answered = np.zeros(len(trace), np.int8)
        self.r.min_free_mb, self.r.peak_nodes = self.c.node_mb, self.c.nodes
        self.open = 0  # calls arrived and not finished
        for node in self.nodes:
            self.push(self.c.node_idle_s, RELEASE, node)

    def push(self, t: float, kind: int, a: object, b: float = 0.0) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (t, self.seq, kind, a, b))

    def run(self) -> Result:
        wall = time.perf_counter()
        times, funcs = self.t.times.tolist(), self.t.func.tolist()
        i, n = 0, len(times)
        handlers = [self.ready, self.end, self.expire, self.prewarm, self.node_up, self.release]
        while i < n or (self.heap and self.open):
            if i < n and (not self.heap or times[i] <= self.heap[0][0]):
                self.now = times[i]
                self.arrive(i, funcs[i])
                i += 1
                continue
            t, _, kind, a, b = heapq.heappop(self.heap)
            self.now = t
            handlers[kind](a, b)
        for q in self.queue:  # no container ever came
            for j in q:
                self.fail(j)
            q.clear()
        for box in list(self.all_idle):
            self.r.wasted_gbs += (self.now - box.idle_since) * box.mb / 1024.0
        for node in self.nodes:
            self.r.nd += self.now - node.since
        self.r.wall_s = time.perf_counter() - wall
        return self.r

    # calls
    def arrive(self, i: int, fn: int) -> None:
        self.open += 1
        if self.mem[fn] > self.c.node_mb:
            self.fail(i)
            return
        since = self.drop[fn].get(self.inflight[fn])
        gap = None if since is None else self.now - since
        idle = self.idle[fn]
        self.p.on_invoke(fn, self.now, not idle, gap, self.inflight[fn])
        self.inflight[fn] += 1
        if idle or self.room[fn]:
            box = idle.popitem()[0] if idle else min(self.room[fn], key=lambda b: b.calls)
            self.start(box, i)
            return
        self.r.cold += 1
        self.pressed[fn] = self.pressed[fn] or bool(self.held[fn])
        self.queue[fn].append(i)
        if self.booting[fn] * self.cap[fn] < len(self.queue[fn]) and not self.spawn(fn):
            self.waiting.append(fn)

    def start(self, box: _Box, i: int) -> None:
        if box.state == "idle":
            self.r.wasted_gbs += (self.now - box.idle_since) * box.mb / 1024.0
            self.all_idle.pop(box, None)
            self.idle[box.fn].pop(box, None)
        box.state, box.gen, box.until = "busy", box.gen + 1, None
        box.calls += 1
        if box.calls < self.cap[box.fn]:
            self.room[box.fn][box] = None
        else:
            self.room[box.fn].pop(box, None)
        sl = self.now - self.t.times[i]
        self.r.sl += sl
        self.r.rt += sl + self.t.durations[i]
        self.r.rt_by_fn[box.fn] += sl + self.t.durations[i]
        self.answer(i)
        self.push(self.now + self.t.durations[i], END, box)

    def answer(self, i: int) -> None:
        self.r.answered[i] += 1

    def fail(self, i: int) -> None:
        fn = int(self.t.func[i])
        self.r.errors += 1
        self.open -= 1
        self.answer(i)
        if self.mem[fn] <= self.c.node_mb:
            self.done(fn)

    def done(self, fn: int) -> None:
        self.inflight[fn] -= 1
        self.drop[fn][self.inflight[fn]] = self.now

    def take(self, box: _Box) -> bool:
        """Serve the oldest calls of the box's function still in time, as many
        as it has room for; False when it is left with none."""
        q = self.queue[box.fn]
        while q and box.calls < self.cap[box.fn]:
            i = q.popleft()
            if self.now - self.t.times[i] > self.c.timeout:
                self.fail(i)
                continue
            self.start(box, i)
        return box.calls > 0

    def learn(self, fn: int) -> None:
        self.clean[fn] += 1
        if self.cap[fn] >= self.c.max_calls or self.clean[fn] < self.c.raise_after:
            return
        if not self.pressed[fn]:
            return
        self.cap[fn] = self.c.max_calls  # what memory and CPU leave room for
        self.clean[fn], self.pressed[fn] = 0, False
        for box in list(self.room[fn]):
            self.take(box)

    # containers
    def place(self, mb: float) -> _Node | None:
        fits = [n for n in self.nodes if n.free >= mb]
        if not fits:
            return None
        if self.c.placement == "pack":  # as the scheduler: a node with a spare first
            return min(fits, key=lambda n: (not self.starts.waiting(n.id, self.now), n.free))
        return fits[0]

    def spawn(self, fn: int, *, until: float | None = None) -> bool:
        mb = self.mem[fn]
        node = self.place(mb)
        if node is None and until is None:
            node = self.evict_for(mb)
        if node is None:
            if until is None:
                self.reserve(mb)
            return False
        box = _Box(fn, node, mb)
        box.until = until
        node.free -= mb
        node.count += 1
        self.r.min_free_mb = min(self.r.min_free_mb, node.free)
        self.held_mb += mb
        self.r.peak_mb = max(self.r.peak_mb, self.held_mb)
        self.booting[fn] += 1
        self.held[fn] += 1
        self.r.containers += 1
        self.push(self.now + self.starts.take(node.id, self.now), READY, box)
        self.scale()
        cap = self.p.capacity_mb
        while cap is not None and self.held_mb > cap and self.all_idle:
            self.evict(min(self.all_idle, key=lambda b: b.prio))
        return True

    def evict_for(self, mb: float) -> _Node | None:
        for box in sorted(self.all_idle, key=lambda b: b.prio):
            self.evict(box)
            if box.node.free >= mb:
                return box.node
        return None

    def evict(self, box: _Box) -> None:
        self.r.evictions += 1
        self.remove(box)
        self.p.on_evict(box.fn, box.prio, self.now, self.held[box.fn] == 0)

    def remove(self, box: _Box) -> None:
        if box.state == "idle":
            self.r.wasted_gbs += (self.now - box.idle_since) * box.mb / 1024.0
            self.all_idle.pop(box, None)
            self.idle[box.fn].pop(box, None)
        box.state = "gone"
        self.room[box.fn].pop(box, None)
        box.node.free += box.mb
        box.node.count -= 1
        self.held_mb -= box.mb
        self.held[box.fn] -= 1
        if box.node.count == 0:
            box.node.empty = self.now
            self.push(self.now + self.c.node_idle_s, RELEASE, box.node)
        self.retry()

    def retry(self, evict: bool = False) -> None:
        """Start what waits for memory; evict: a container just went idle, and
        evicting it may make room (as the scheduler's _room does)."""
        if self.retrying:
            return
        self.retrying = True
        try:
            while self.waiting:
                fn = self.waiting[0]
                if self.booting[fn] >= len(self.queue[fn]):
                    self.waiting.popleft()
                    continue
                node = self.place(self.mem[fn])
                if node is None and evict:
                    node = self.evict_for(self.mem[fn])
                if node is None:
                    return
                self.waiting.popleft()
                self.spawn(fn)
        finally:
            self.retrying = False

    def go_idle(self, box: _Box, until: float | None) -> None:
        box.state, box.idle_since, box.gen = "idle", self.now, box.gen + 1
        box.prio = self.p.priority(box.fn, self.now)
        self.idle[box.fn][box] = None
        self.all_idle[box] = None
        if until is not None and math.isfinite(until):
            self.push(until, EXPIRE, box, box.gen)
        if self.waiting:
            self.retry(evict=True)

    # events
    def ready(self, box: object, _: float) -> None:
        assert isinstance(box, _Box)
        self.booting[box.fn] -= 1
        if self.take(box):
            return
        if box.until is not None:  # pre-warmed
            if box.until > self.now:
                self.go_idle(box, box.until)
            else:
                self.remove(box)
            return
        self.idle_decision(box)

    def end(self, box: object, _: float) -> None:
        assert isinstance(box, _Box)
        self.open -= 1
        self.done(box.fn)
        box.calls -= 1
        if box.calls < self.cap[box.fn]:
            self.room[box.fn][box] = None
        if self.c.max_calls > 1:
            self.learn(box.fn)
        if not self.take(box):
            self.room[box.fn].pop(box, None)
            self.idle_decision(box)

    def idle_decision(self, box: _Box) -> None:
        f = box.fn  # level: the calls its other ready containers take at once
        w = self.p.on_idle(f, self.now, self.cap[f] * (self.held[f] - self.booting[f] - 1))
        if w.end <= 0 or w.end <= w.start:
            self.remove(box)
        elif w.start <= self.guess or self.inflight[box.fn] > 0:
            # others of its function still run: keep it to the window's end
            # (the last to go idle is the one removed and pre-warmed)
            self.go_idle(box, self.now + w.end)
        else:
            self.prewarm_to[box.fn] = self.held[box.fn]
            self.remove(box)
            at = self.now + w.start - self.guess
            self.prewarm_at[box.fn] = at
            self.push(at, PREWARM, box.fn, self.now + w.end)

    def expire(self, box: object, gen: float) -> None:
        assert isinstance(box, _Box)
        if box.state == "idle" and box.gen == gen:
            self.remove(box)

    def prewarm(self, fn: object, until: float) -> None:
        assert isinstance(fn, int)
        if self.prewarm_at[fn] != self.now:
            return  # superseded
        for _ in range(self.prewarm_to[fn] - self.held[fn]):  # as many as it held
            if not self.spawn(fn, until=until):
                break

    def reserve(self, mb: float) -> None:
        short = sum(self.mem[f] for f in self.waiting) + mb
        if self.pending * self.c.node_mb >= short:
            return
        if len(self.nodes) + self.pending < self.c.max_nodes:
            self.pending += 1
            self.push(self.now + self.c.reserve_s, NODE, None)

    def free_mb(self) -> float:
        return sum(n.free for n in self.nodes) + self.pending * self.c.node_mb

    def scale(self) -> None:
        """Reserve ahead so a start rarely waits the reservation delay."""
        if (
            self.free_mb() < self.c.headroom_mb
            and len(self.nodes) + self.pending < self.c.max_nodes
        ):
            self.pending += 1
            self.push(self.now + self.c.reserve_s, NODE, None)

    def node_up(self, _: object, __: float) -> None:
        self.pending -= 1
        node = _Node(self.next_node, self.c.node_mb, self.now)
        self.next_node += 1
        self.nodes.append(node)
        self.r.peak_nodes = max(self.r.peak_nodes, len(self.nodes))
        self.push(self.now + self.c.node_idle_s, RELEASE, node)
        self.retry()

    def release(self, node: object, _: float) -> None:
        assert isinstance(node, _Node)
        if node.count or node not in self.nodes or len(self.nodes) <= self.c.min_nodes:
            return
        if self.now - node.empty < self.c.node_idle_s:
            return
        if self.free_mb() - node.free < self.c.headroom_mb:
            return
        self.r.nd += self.now - node.since
        self.nodes.remove(node)


def simulate_trace(trace: Trace, policy: Policy, config: Config | None = None) -> Result:
    return Simulator(trace, policy, config).run()
