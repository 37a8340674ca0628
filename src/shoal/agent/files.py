"""The agent's Files service: receive a broadcast (Copy) and serve gathers (Fetch).

Copy: the first message is a header naming this node's subtree. The agent
answers with the offset it already holds for that transfer (0 when new, more
when an ancestor adopts it after its relay died), writes the chunks that
follow to its spool, and feeds its children from the spool as it goes (see
tree/feed.py). Its own result is sent once the end-to-end hash matched and the
destination is in place; the stream closes when every node below has
reported.

Nodes that share a filesystem (agents of one process, local agents sharing
/tmp, an NFS export) write a destination once: the first to claim its part
file writes it, the others follow (agent/follow.py). Part files are locked by
their writers, so the sweep at start removes only dead ones (tree/claim.py).

A transfer whose upstream breaks before the end keeps its spool for
ADOPT_WINDOW seconds, waiting for an ancestor to resume it, then removes it.
An explicit abort (the user pressed Ctrl-C) removes it at once. A node that
cannot write (destination missing, not writable, disk full) reports FAILED
with the reason and closes its stream, so its parent adopts its children.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc

from shoal.agent.fetch import fetch_chunks
from shoal.agent.follow import Follower, Rewind, open_spool
from shoal.agent.gate import Gate
from shoal.agent.intake import Call, Intake, SpoolOrigin, Transfer
from shoal.core.config import shoal_home
from shoal.core.grant import body_of
from shoal.core.wire import fpb, frpc, pb
from shoal.tree import bulk
from shoal.tree.claim import SpoolDirs
from shoal.tree.feed import DEFAULT_STALL, Dialer, Feed, copy_result
from shoal.tree.source import DEFAULT_CHUNK
from shoal.tree.spool import Meta, Spool, TransferError, resolve_target
from shoal.tree.subtree import names

log = logging.getLogger("shoal.agent.files")

ADOPT_WINDOW = 30.0  # seconds a broken transfer waits to be resumed
EVENT_QUEUE = 64  # results buffered per Copy call (back-pressure beyond)


class FilesService(frpc.FilesServicer):
    def __init__(
        self,
        dial: Dialer,
        root: Path,
        gate: Gate,
        node: str | None = None,
        bulk_host: str = "127.0.0.1",
        bulk_port: int = 0,
    ) -> None:
        """dial: see tree/feed.py. root: where absolute transfer paths start; "/" on
        a real node, a per-node directory for local agents sharing one disk.
        gate: admits only work an operator signed (agent/gate.py).
        node: this agent's name; with it, the directories it spools in are
        recorded under $SHOAL_HOME/agent so that `sweep()` at the next start
        removes what a crash left there. bulk_host, bulk_port: the bulk port
        (tree/bulk.py), on the agent's own listen address; port 0: any."""
        self._dial = dial
        self.bulk, self._bulk_started = bulk.Listener(bulk_host, bulk_port), False
        self._root = root
        self._gate = gate
        self._transfers: dict[str, Transfer] = {}
        self._node = node
        self._dirs = SpoolDirs(shoal_home() / "agent" / f"{node}.spool-dirs") if node else None

    async def start_bulk(self) -> int:
        """Open the bulk port (at the agent's start; else at the first copy)."""
        if not self._bulk_started:
            await self.bulk.start()
            self._bulk_started = True
        return self.bulk.port

    def sweep(self) -> None:
        """At start: remove the part files (and half-extracted directories) that
        transfers of an earlier run of this agent left, and log what was freed.
        A part a live agent is writing (one sharing this filesystem) is kept."""
        if self._dirs is None:
            return
        try:
            removed = self._dirs.sweep()
        except OSError as e:
            log.warning(
                "agent %s: cannot sweep old spools (%s): %s", self._node, self._dirs.path, e
            )
            return
        if removed:
            total = sum(size for _, size in removed)
            log.warning(
                "agent %s: swept %d stale spool file(s) of transfers that died, %d bytes"
                " (%.1f MB) freed: %s",
                self._node,
                len(removed),
                total,
                total / 1e6,
                ", ".join(str(p) for p, _ in removed),
            )

    def _local(self, path: str) -> str:
        if self._root == Path("/"):
            return path
        return str(self._root / path.lstrip("/")) + ("/" if path.endswith("/") else "")

    # -- Copy ------------------------------------------------------------------

    async def Copy(
        self, request_iterator: AsyncIterator[fpb.CopyMessage], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[fpb.CopyEvent]:
        first = await anext(request_iterator, None)
        if first is None or not first.HasField("header"):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "Copy must start with a header")
            return
        h = first.header
        me = h.tree.name
        started = time.time_ns()
        t = self._transfers.get(h.transfer_id)
        await self._gate.admit(context, h.signed, body_of(h), h.tree, fresh=t is None)
        if t is not None:
            if t.owner is not None:
                t.owner.stop()  # a stale call from a relay that died: we take over
                t.owner = None
            if t.expiry is not None:
                t.expiry.cancel()
                t.expiry = None
        try:
            if h.bulk and h.bulk not in bulk.MODES:
                raise TransferError(f"unknown bulk mode {h.bulk!r}")
            if t is None:
                t = self._open(h)
            elif isinstance(t.spool, Follower) and t.result is None:
                # Resumed after a fault: the node writing our shared file may be
                # the relay that died or hung. Keep our own copy, from offset 0.
                t.spool.close()
                t.spool = self._spool(h, resumed=True)
        except TransferError as e:
            log.warning("copy %s to %s refused: %s", h.transfer_id[:8], h.dest, e.message)
            if t is not None:
                self._drop(h.transfer_id)
            yield fpb.CopyEvent(resume_offset=0)
            yield copy_result(me, pb.STATE_FAILED, e.message, started)
            return  # our parent adopts our children
        log.info(
            "copy %s to %s: from offset %d, %d child(ren)",
            h.transfer_id[:8],
            t.spool.target,
            t.spool.offset,
            len(h.tree.children),
        )
        yield fpb.CopyEvent(resume_offset=t.spool.offset)
        offer = None
        if h.bulk:
            await self.start_bulk()
            offer = self.bulk.offer()
            if h.bulk == "mac":
                log.warning(
                    "copy %s: PLAIN TEXT bulk stream from %s (--bulk mac): tagged, not encrypted",
                    h.transfer_id[:8],
                    context.peer(),
                )
            yield fpb.CopyEvent(bulk=offer[0])
        if t.result is not None:
            yield t.result

        out: asyncio.Queue[fpb.CopyEvent] = asyncio.Queue(EVENT_QUEUE)
        feed = Feed(header=h, origin=SpoolOrigin(t), dial=self._dial, out=out)
        if t.result is not None:
            feed.reported.add(me)
        for child in h.tree.children:
            feed.start(child)
        receiver = asyncio.create_task(self._receive(request_iterator, t, feed, h, started, offer))
        call = t.owner = Call(receiver, feed)
        # The generator's finally may run late (at garbage collection) when gRPC
        # cancels it at a yield; the RPC's done callback always runs.
        context.add_done_callback(lambda _ctx: self._rpc_done(h.transfer_id, t, call))
        clean = False
        try:
            while True:
                if receiver.done():
                    if receiver.cancelled():
                        break  # superseded by a newer call for this transfer
                    failed = receiver.exception() or (t.spool.failed is not None)
                    if failed:  # our own copy failed: stop feeding, let the parent adopt
                        for task in list(feed.tasks):
                            task.cancel()
                        await feed.wait()
                        while not out.empty():
                            yield out.get_nowait()
                        break
                    if not feed.tasks and out.empty():
                        clean = True
                        break
                getter = asyncio.ensure_future(out.get())
                # A receiver that is done stays out: waiting on it would spin.
                pending = {getter, *feed.tasks} | (set() if receiver.done() else {receiver})
                done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    yield getter.result()
                    continue
                getter.cancel()
        finally:
            if not receiver.done():
                receiver.cancel()
            for task in list(feed.tasks):
                task.cancel()
            self._release(h.transfer_id, t, call, clean or feed.aborted is not None)

    def _open(self, h: fpb.CopyHeader) -> Transfer:
        t = Transfer(self._spool(h))
        self._transfers[h.transfer_id] = t
        return t

    def _spool(self, h: fpb.CopyHeader, resumed: bool = False) -> Spool | Follower:
        meta = Meta.from_header(h)
        if not os.path.isabs(h.dest):
            raise TransferError(f"destination {h.dest!r} is not absolute")
        dest = h.dest.replace("%h", h.tree.name)  # this node's name, as in clush
        target = resolve_target(self._local(dest), meta)
        if self._dirs is not None:
            try:
                self._dirs.add(target.parent)
            except OSError as e:  # the copy matters more; a crash would leave the part
                log.warning("cannot record %s in %s: %s", target.parent, self._dirs.path, e)
        below = names(h.tree)[1:]
        patience = 3 * (h.stall_timeout or DEFAULT_STALL)  # a writer fsyncing is quiet too
        return open_spool(target, meta, h.transfer_id, h.tree.name, below, patience, resumed)

    async def _receive(
        self,
        requests: AsyncIterator[fpb.CopyMessage],
        t: Transfer,
        feed: Feed,
        h: fpb.CopyHeader,
        started: int,
        offer: tuple[fpb.BulkOffer, asyncio.Future[socket.socket]] | None = None,
    ) -> None:
        """Write what the parent sends; send our own result when verified."""
        me = h.tree.name
        intake = Intake(t, feed, h, self._rewind)
        try:
            control = asyncio.create_task(self._control(requests, intake, started, offer))
            tasks = {control}
            if offer is not None:
                tasks.add(asyncio.create_task(self._bulk_in(intake, offer)))
            try:
                while not control.done():
                    done, tasks = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                    for d in done:
                        d.result()  # a bulk stream refused, a disk full: raised here
            finally:
                for task in tasks:
                    task.cancel()
                if offer is not None:
                    bulk.drop(offer[1])
        except TransferError as e:
            await t.spool.fail(e.message)
            t.result = copy_result(me, pb.STATE_FAILED, e.message, started)
            await feed.out.put(t.result)
            feed.reported.add(me)
            raise

    async def _bulk_in(
        self, intake: Intake, offer: tuple[fpb.BulkOffer, asyncio.Future[socket.socket]]
    ) -> None:
        h = intake.h
        limit = h.chunk_size or DEFAULT_CHUNK
        wait = h.connect_timeout or 5.0
        receiver = await bulk.accept(offer[1], offer[0], h.bulk, limit, wait)
        try:
            await intake.stream(receiver)
        finally:
            bulk.close_quietly(receiver.sock)

    async def _control(
        self,
        requests: AsyncIterator[fpb.CopyMessage],
        intake: Intake,
        started: int,
        offer: object,
    ) -> None:
        """The Copy call's messages: chunks (no bulk stream), the end, an abort."""
        t, feed, h = intake.t, intake.feed, intake.h
        async for msg in requests:
            kind = msg.WhichOneof("kind")
            if kind == "chunk":
                await intake.chunk(msg.chunk.offset, msg.chunk.data)
            elif kind == "end":
                if offer is not None and not await intake.before_end(msg.end.size):
                    continue
                if t.complete.is_set() or intake.rewound:
                    continue
                try:
                    await t.spool.finish(msg.end.xxh3_128)
                except Rewind as e:
                    intake.rewound = await self._rewind(t, feed, h, e)
                    continue
                t.end = msg.end
                t.complete.set()
                await t.spool.notify()
                await t.spool.settle()
                t.result = copy_result(h.tree.name, pb.STATE_OK, t.spool.note, started)
                await feed.out.put(t.result)
                feed.reported.add(h.tree.name)
            elif kind == "abort":
                log.info("copy %s: aborted (%s)", t.spool.transfer_id[:8], msg.abort.reason)
                await feed.abort(msg.abort.reason or "aborted")
                await t.spool.fail(f"aborted: {msg.abort.reason}")
                return

    async def _rewind(self, t: Transfer, feed: Feed, h: fpb.CopyHeader, why: Rewind) -> bool:
        """Our follower lost the file it followed: keep our own copy from now on,
        and ask the parent for the stream again from its start."""
        log.info(
            "copy %s: %s no longer follows (%s): writes its own copy of %s",
            h.transfer_id[:8],
            h.tree.name,
            why.reason,
            t.spool.target,
        )
        t.spool.close()
        t.recent.clear()
        t.spool = self._spool(h, resumed=True)  # before any await: readers switch to it
        await feed.out.put(fpb.CopyEvent(resume_offset=t.spool.offset))
        return True

    def _rpc_done(self, tid: str, t: Transfer, call: Call) -> None:
        finished = call.feed.aborted is not None or (t.complete.is_set() and not call.feed.tasks)
        call.stop()
        self._release(tid, t, call, finished)

    def _release(self, tid: str, t: Transfer, call: Call, finished: bool) -> None:
        """Once per call (the first of the generator's finally and the RPC's end)."""
        log.debug(
            "copy %s: call ended (finished=%s, failed=%s, owner=%s)",
            tid[:8],
            finished,
            t.spool.failed,
            t.owner is call,
        )
        if t.owner is not call:
            return  # a newer call owns the transfer now
        t.owner = None
        if finished or t.spool.failed is not None:
            self._drop(tid)
            return
        # May run from gRPC's done callback: use the loop the transfer lives on.
        t.expiry = t.loop.call_later(ADOPT_WINDOW, self._expire, tid)

    def _expire(self, tid: str) -> None:
        t = self._transfers.get(tid)
        if t is None or t.owner is not None:
            return
        log.info(
            "copy %s: not resumed within %.0fs, removing %s", tid[:8], ADOPT_WINDOW, t.spool.part
        )
        t.spool.discard("not resumed")
        self._drop(tid)

    def _drop(self, tid: str) -> None:
        t = self._transfers.pop(tid, None)
        if t is None:
            return
        if not t.complete.is_set():
            t.spool.discard("transfer ended")
        t.spool.close()

    async def close(self) -> None:
        """On shutdown: no transfer is left half-written; none goes on meanwhile."""
        for t in self._transfers.values():
            if t.owner is not None:
                t.owner.stop()
        await self.bulk.close()
        for tid in list(self._transfers):
            t = self._transfers[tid]
            if not t.complete.is_set():
                await t.spool.fail("agent stopped")
            self._drop(tid)

    # -- Fetch -----------------------------------------------------------------

    async def Fetch(
        self, request: fpb.FetchRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[fpb.FetchChunk]:
        me = pb.Subtree(name=self._gate.name)
        await self._gate.admit(context, request.signed, body_of(request), me)
        async for chunk in fetch_chunks(request, self._local(request.path)):
            yield chunk
