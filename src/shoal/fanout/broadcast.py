"""The client side of `shoal copy`: read the source once, feed the roots.

The client is a root without a local copy: its origin is the source file
itself (read back with pread, so each root link runs at its own pace), or
for a directory an unlinked temporary file the tar stream is written into
as it is produced. The last chunks read stay in memory for the roots that
keep up (tree.bulk.Recent). The feeders are the agents' own (tree.feed.Feed).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from collections.abc import Callable
from typing import Any

from shoal.core.grant import Signer, body_of
from shoal.core.keepalive import Keepalive
from shoal.core.wire import fpb, pb
from shoal.fanout.client import Targets
from shoal.fanout.plan import plan
from shoal.tree.bulk import RECENT_BYTES, Recent
from shoal.tree.channels import Channels
from shoal.tree.feed import Feed
from shoal.tree.source import Source


class SourceOrigin:
    """Produces the stream once (hashing it) and serves it at any offset."""

    def __init__(self, src: Source) -> None:
        self.src = src
        self.available = 0
        self.done = False
        self._end: fpb.CopyEnd | None = None
        self._changed = asyncio.Condition()
        self.recent = Recent()
        self.asked = 0  # the furthest any root has asked for
        if src.meta.kind == "file":
            self._fd = os.open(src.path, os.O_RDONLY)
            self._spool = False
        else:
            self._tmp = tempfile.TemporaryFile(prefix="shoal-copy-")  # unlinked at once
            self._fd = self._tmp.fileno()
            self._spool = True

    async def produce(self) -> None:
        """Read (and hash) the whole source; readers follow behind."""
        for chunk in self.src.chunks():
            if self._spool:
                view, at = memoryview(chunk), self.available
                while view:
                    n = os.pwrite(self._fd, view, at)
                    view, at = view[n:], at + n
            self.recent.add(self.available, chunk)
            self.available += len(chunk)
            async with self._changed:
                self._changed.notify_all()
                # Stay close to the fastest root, which then reads from memory.
                while self.available >= self.asked + RECENT_BYTES // 2:
                    await self._changed.wait()
            await asyncio.sleep(0)
        self._end = fpb.CopyEnd(xxh3_128=self.src.digest, size=self.src.sent)
        self.done = True
        async with self._changed:
            self._changed.notify_all()

    def ready(self, offset: int, size: int) -> bytes | memoryview | None:
        if offset + size > self.asked or offset >= self.available:
            return None  # read() moves the reader on
        return self.recent.get(offset, size)

    async def read(self, offset: int, size: int) -> bytes | memoryview:
        if offset + size > self.asked:
            self.asked = offset + size
            async with self._changed:
                self._changed.notify_all()
        while True:
            if offset < self.available:
                held = self.recent.get(offset, size)
                if held is not None:
                    return held
                return os.pread(self._fd, min(size, self.available - offset), offset)
            if self.done:
                return b""
            async with self._changed:
                if offset >= self.available and not self.done:
                    await self._changed.wait()

    def end(self) -> fpb.CopyEnd:
        assert self._end is not None
        return self._end

    def close(self) -> None:
        if self._spool:
            self._tmp.close()
        else:
            os.close(self._fd)


async def broadcast(
    source: Source,
    dest: str,
    targets: Targets,
    *,
    width: int,
    credentials: Any | None,
    connect_timeout: float,
    on_event: Callable[[pb.TaskEvent], None],
    on_progress: Callable[[int], None] | None = None,
    stall_timeout: float = 0.0,
    signer: Signer | None = None,
    keepalive: Keepalive | None = None,
    bulk: str = "",
) -> None:
    """Copy source to dest on every target through the tree (pipelined).
    bulk: the header's data plane ("aead", "mac"; "": in the Copy calls).

    Cancelling this coroutine (Ctrl-C) sends an abort down the tree, so every
    node drops its temporary file at once.
    """
    header = source.meta.to_header(
        transfer_id=uuid.uuid4().hex,
        dest=dest,
        chunk_size=source.chunk_size,
        connect_timeout=connect_timeout,
        stall_timeout=stall_timeout,
        bulk=bulk,
    )
    roots = plan([(n, targets.addresses[n]) for n in targets.nodes], width)
    if signer is not None:  # one grant for the whole plan: a header goes once per node
        header.signed.CopyFrom(signer.sign(pb.Subtree(children=roots), body_of(header)))
    origin = SourceOrigin(source)
    out: asyncio.Queue[fpb.CopyEvent] = asyncio.Queue(64)
    chans = Channels(credentials, keepalive)
    feed = Feed(header=header, origin=origin, dial=chans.get, out=out)
    producer = asyncio.create_task(origin.produce())

    async def drain() -> None:
        while True:
            ev = await out.get()
            on_event(ev.event)
            if on_progress is not None and feed.sent:
                on_progress(min(feed.sent.values()))

    drainer = asyncio.create_task(drain())
    try:
        for r in roots:
            feed.start(r)
        await feed.wait()
        drainer.cancel()
        await asyncio.gather(drainer, return_exceptions=True)
        while not out.empty():  # what the drainer had not taken yet
            on_event(out.get_nowait().event)
    except asyncio.CancelledError:
        await asyncio.shield(feed.abort("interrupted by the user"))
        raise
    finally:
        drainer.cancel()
        producer.cancel()
        await asyncio.gather(drainer, producer, return_exceptions=True)
        origin.close()
        await chans.close()
