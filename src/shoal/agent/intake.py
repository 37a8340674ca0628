"""One transfer's state on this agent, and what one Copy call takes in from
its parent: chunks (in the call itself or on its bulk stream, tree/bulk.py)
written in order to this node's spool, and the end, acted on only once
every byte it covers is in. Used by agent/files.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from shoal.agent.follow import POLL, Follower, Rewind
from shoal.core.wire import fpb
from shoal.tree.bulk import Receiver, Recent
from shoal.tree.feed import Feed
from shoal.tree.spool import Spool, TransferError


@dataclass(eq=False)
class Call:
    """One Copy call's moving parts, so a newer call can take the transfer over."""

    receiver: asyncio.Task[None]
    feed: Feed

    def stop(self) -> None:
        self.receiver.cancel()
        for task in list(self.feed.tasks):
            task.cancel()


@dataclass
class Transfer:
    """This agent's state for one transfer, shared by successive Copy calls."""

    spool: Spool | Follower
    complete: asyncio.Event = field(default_factory=asyncio.Event)
    end: fpb.CopyEnd | None = None
    result: fpb.CopyEvent | None = None  # our own result, re-sent on resume
    owner: Call | None = None  # the Copy call currently feeding this transfer
    expiry: asyncio.TimerHandle | None = None
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.get_running_loop)
    recent: Recent = field(default_factory=Recent)  # the last chunks, for children


class SpoolOrigin:
    """Feeds children from memory when they keep up, else from this agent's spool."""

    def __init__(self, t: Transfer) -> None:
        self.t = t

    def ready(self, offset: int, size: int) -> bytes | memoryview | None:
        spool = self.t.spool
        if spool.failed is None and offset < spool.offset:
            return self.t.recent.get(offset, size)
        return None

    async def read(self, offset: int, size: int) -> bytes | memoryview:
        while True:
            held = self.ready(offset, size)
            if held is not None:
                return held
            spool = self.t.spool
            waiting = spool.failed is None and offset >= spool.offset
            if waiting and isinstance(spool, Spool) and not self.t.complete.is_set():
                await spool.written(offset)  # then from memory, as it was just written
                continue
            try:
                return await spool.read(offset, size, complete=self.t.complete)
            except Rewind:
                if self.t.spool is spool:
                    raise TransferError("transfer ended") from None
                await asyncio.sleep(POLL)  # from our own copy now (see files.py _rewind)

    def end(self) -> fpb.CopyEnd:
        assert self.t.end is not None
        return self.t.end


Rewinder = Callable[[Transfer, Feed, fpb.CopyHeader, Rewind], Awaitable[bool]]


@dataclass
class Intake:
    t: Transfer
    feed: Feed
    h: fpb.CopyHeader
    rewind: Rewinder  # our follower lost its file: True once the parent was asked again
    rewound: bool = False  # until the parent's stream starts again from our offset
    closed: bool = False  # the bulk stream ended
    progress: asyncio.Event = field(default_factory=asyncio.Event)
    error: TransferError | None = None  # why the bulk stream was refused

    async def chunk(self, offset: int, data: bytes | memoryview) -> None:
        t = self.t
        if offset + len(data) <= t.spool.offset:
            return  # already held (a resume overlapped)
        if offset != t.spool.offset:
            if self.rewound:
                return  # sent before our parent saw the rewind
            raise TransferError(f"stream gap: got offset {offset}, hold {t.spool.offset}")
        self.rewound = False
        needed = self.feed.low_water()
        try:
            await t.spool.write(data, needed)  # type: ignore[arg-type]
        except Rewind as e:
            t.recent.clear()
            self.rewound = await self.rewind(t, self.feed, self.h, e)
            return
        t.recent.add(offset, data, needed)

    async def stream(self, receiver: Receiver) -> None:
        """Take the bulk stream's frames until it ends."""
        try:
            async for offset, data in receiver.frames():
                await self.chunk(offset, data)
                self.progress.set()
                # A socket that always has the next frame never suspends us:
                # let the children's feeders take this chunk while it is in memory.
                await asyncio.sleep(0)
        except OSError as e:
            self.error = TransferError(f"bulk stream from the parent broke: {e.strerror or e}")
            raise self.error from e
        except TransferError as e:
            self.error = e  # the end waiting for these bytes says this, not "ended"
            raise
        finally:
            self.closed = True
            self.progress.set()

    async def before_end(self, size: int) -> bool:
        """Wait until the bulk stream brought the bytes the end covers; False
        when the end is stale (we asked for the stream again meanwhile)."""
        while self.t.spool.offset < size and not self.rewound and not self.closed:
            self.progress.clear()
            await self.progress.wait()
        if self.rewound:
            return False
        if self.error is not None:
            raise self.error
        if self.t.spool.offset < size:
            raise TransferError(f"bulk stream ended at {self.t.spool.offset} of {size} bytes")
        return True
