"""Spare faas workers: started before any function asks for them, so that a
CreateContainer finds a process with Python up and the worker imported. It
gives the spare's sandbox the function's limits (memory, CPU quota,
processes) and tells the spare its function (agent/worker.py); the spare
then imports it and says ready, as a worker started for it would.

An agent keeps spares once it has served a CreateContainer or a first
GetStats (a scheduler holds it; an agent that never runs functions holds
none), `--faas-spares` of them (0: none), each replaced in the background
as it is taken. A CreateContainer that finds none waiting (a burst) makes
the agent keep one more, up to GROWTH times as many; one a minute after the
last such miss gives one back. A spare waits under a small memory limit and
the CPU of one core; one that died is dropped, and a function asking for
less memory than a spare holds gets a worker of its own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from shoal.agent.container import Container, StartError
from shoal.agent.sandbox import SandboxError

log = logging.getLogger("shoal.agent.faas")

SPARES = 2  # default per agent
SPARE_MEMORY = 64 << 20  # a spare's memory limit until it has a function
SPARE_CORES = 1.0  # its CPU quota meanwhile: a quick start
SPARE_LIMIT = 30.0  # seconds a spare may take to start
GROWTH = 4  # spares kept after misses, at most, per one asked for
SHRINK_S = 60.0  # seconds without a miss before one fewer is kept
STARTING = 2  # spares started at once


class Spares:
    def __init__(self, node: str, want: int, launch: Callable[[], Awaitable[Container]]) -> None:
        self.node = node
        self.base = self.want = want
        self.missed = time.monotonic()
        self._serving = False  # a CreateContainer or GetStats came: spares kept from now on
        self._launch = launch
        self._ready: list[Container] = []
        self._starting: set[asyncio.Task[bool]] = set()
        self._ending: set[asyncio.Future[None]] = set()
        self._closed = False

    @property
    def waiting(self) -> int:
        return len(self._ready)

    def take(self, memory: int) -> Container | None:
        """A live spare for a function of `memory` bytes, or None."""
        if memory < SPARE_MEMORY:
            return None
        while self._ready:
            c = self._ready.pop(0)
            if c.proc.returncode is None and not c.gone:
                self._shrink()
                return c
            self._background(c.destroy("", "spare died"))
        if self._serving and self.want < self.base * GROWTH:
            self.want += 1  # a burst outran the spares
        self.missed = time.monotonic()
        return None

    def _shrink(self) -> None:
        now = time.monotonic()
        if self.want > self.base and now - self.missed > SHRINK_S:
            self.want -= 1
            self.missed = now
            while len(self._ready) > self.want:
                self._background(self._ready.pop().destroy("", "spare not needed"))

    def wake(self) -> None:
        """Start keeping spares, unless already (then CreateContainer refills)."""
        if not self._serving:
            self.refill()

    def refill(self) -> None:
        """Start spares up to the number wanted, STARTING at a time."""
        self._serving = True
        while (
            not self._closed
            and len(self._starting) < STARTING
            and len(self._ready) + len(self._starting) < self.want
        ):
            t = asyncio.create_task(self._one())
            self._starting.add(t)
            t.add_done_callback(self._started)

    def _started(self, t: asyncio.Task[bool]) -> None:
        self._starting.discard(t)
        if not t.cancelled() and t.exception() is None and t.result():
            self.refill()  # the next one; after a failure, at the next CreateContainer

    def forget(self, cid: str) -> None:
        """A spare ended (destroyed before it was taken)."""
        self._ready = [c for c in self._ready if c.id != cid]

    async def _one(self) -> bool:
        try:
            c = await self._launch()
        except (StartError, SandboxError) as e:
            log.warning("%s: a spare worker could not start: %s", self.node, e)
            return False
        if self._closed:
            await c.destroy("", "agent stopping")
            return False
        self._ready.append(c)
        return True

    def _background(self, aw: Awaitable[None]) -> None:
        t = asyncio.ensure_future(aw)
        self._ending.add(t)
        t.add_done_callback(self._ending.discard)

    async def close(self) -> None:
        """Agent stop: let starting spares finish (bounded by SPARE_LIMIT),
        then remove every spare."""
        self._closed = True
        await asyncio.gather(*self._starting, *self._ending, return_exceptions=True)
        ready, self._ready = self._ready, []
        await asyncio.gather(*(c.destroy("", "agent stopping") for c in ready))
