"""Runs on this agent by task id, so a caller can be replaced without running twice.

A Run's work (the local part and the relay to the children) belongs to a
``Execution``, not to the stream that asked for it. A second Run with the same
task id for the same node attaches to it: it gets every result seen so far
and the recent output (LOG_BUDGET bytes, each chunk with its offset, so the
adopter drops what it already has), then the live stream; the old caller's
stream ends. That is how a grandparent adopts a subtree whose relay hung or
lost its link, and what the hung relay swallowed still reaches the client.
The work is stopped when its caller goes away and no successor comes within
the grace; a finished execution is kept a while so a late adopter or a
replayed grant gets its results, not a rerun.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from shoal.core.wire import pb

if TYPE_CHECKING:
    from shoal.tree.relay import Relay

log = logging.getLogger("shoal.agent")

QUEUE_DEPTH = 64  # events in flight per run on this node
LOG_BUDGET = 4 << 20  # bytes of recent output kept per run for an adopter
Emit = Callable[[pb.TaskEvent], Awaitable[None]]


class Execution:
    def __init__(
        self, body: bytes, work: Callable[[Emit], Awaitable[None]], *, grace: float = 0.0
    ) -> None:
        self.body = body  # the request it runs (tree and grant aside): a reused id must match
        self.grace = grace  # seconds an orphan waits for an adopter; 0: stop at once
        self.relay: Relay | None = None  # its relay to the children, told how it stops
        self._early: list[pb.TaskEvent] = []  # results older than all of the log
        self._log: deque[pb.TaskEvent] = deque()  # recent events, in order
        self._log_bytes = 0
        self._queue: asyncio.Queue[pb.TaskEvent] = asyncio.Queue(QUEUE_DEPTH)
        self._current = 0  # which caller the events go to
        self._getter: asyncio.Future[pb.TaskEvent] | None = None
        self.task = asyncio.create_task(self._work(work))
        self.task.add_done_callback(lambda _: self._wake())

    async def _emit(self, ev: pb.TaskEvent) -> None:
        self._log.append(ev)
        if ev.HasField("output"):
            self._log_bytes += len(ev.output.data)
            while self._log_bytes > LOG_BUDGET:
                old = self._log.popleft()
                if old.HasField("output"):
                    self._log_bytes -= len(old.output.data)
                else:
                    self._early.append(old)
        await self._queue.put(ev)

    def trim(self) -> None:
        """Past the adoption window: keep only the results (for a replayed grant)."""
        self._early.extend(ev for ev in self._log if not ev.HasField("output"))
        self._log.clear()
        self._log_bytes = 0

    async def _work(self, work: Callable[[Emit], Awaitable[None]]) -> None:
        try:
            await work(self._emit)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("run failed")

    def _wake(self) -> None:
        """End the current caller's wait (its event, if any, stays queued)."""
        if self._getter is not None and not self._getter.done():
            self._getter.cancel()

    def attach(self) -> tuple[int, list[pb.TaskEvent]]:
        """A new caller: its token and the events to send it first."""
        self._current += 1
        self._wake()
        return self._current, [*self._early, *self._log]

    async def next(self, token: int) -> pb.TaskEvent | None:
        """The next event for this caller; None when the work is over and sent,
        or a newer caller took over."""
        while token == self._current:
            if self._queue.empty() and self.task.done():
                return None
            self._getter = getter = asyncio.ensure_future(self._queue.get())
            try:
                return await getter
            except asyncio.CancelledError:
                me = asyncio.current_task()
                if me is not None and me.cancelling():
                    raise
                # woken by _wake: look again
            finally:
                if self._getter is getter:
                    self._getter = None
        return None

    def detach(self, token: int) -> None:
        """The caller's stream ended. If it was the current caller and the work
        is not done, nobody reads it: after the grace, unless an adopter has
        attached by then, stop the work (its commands die)."""
        if token != self._current or self.task.done():
            return
        if self.grace <= 0:
            self.stop()
        else:
            asyncio.get_running_loop().call_later(self.grace, self._orphaned, token)

    def _orphaned(self, token: int) -> None:
        if token == self._current and not self.task.done():
            log.info("no caller came back within %gs: stopping the task", self.grace)
            self.stop()

    def stop(self, *, deliberate: bool = True) -> None:
        """Stop the work; deliberate: the children stop now too (else they wait
        for an adopter, as after an agent shutdown)."""
        if self.relay is not None:
            self.relay.deliberate = deliberate
        self.task.cancel()


class Runs:
    """Executions by (task id, node name) on this agent process."""

    def __init__(self, keep: float) -> None:
        self.keep = keep  # seconds a finished execution is kept
        self._runs: dict[tuple[str, str], Execution] = {}

    def get(self, key: tuple[str, str]) -> Execution | None:
        return self._runs.get(key)

    def start(
        self,
        key: tuple[str, str],
        body: bytes,
        work: Callable[[Emit], Awaitable[None]],
        grace: float,
    ) -> Execution:
        ex = self._runs[key] = Execution(body, work, grace=grace)
        loop = asyncio.get_running_loop()

        def finished(_: asyncio.Task[None]) -> None:
            loop.call_later(grace, ex.trim)
            loop.call_later(self.keep, self._forget, key, ex)

        ex.task.add_done_callback(finished)
        return ex

    def _forget(self, key: tuple[str, str], ex: Execution) -> None:
        if self._runs.get(key) is ex:
            del self._runs[key]

    async def cancel_all(self) -> None:
        """Agent shutdown: the children of our relays wait for an adopter."""
        runs, self._runs = list(self._runs.values()), {}
        for ex in runs:
            ex.stop(deliberate=False)
        for ex in runs:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await ex.task
