"""Feeding a copy down the tree: the same code on the client and on agents.

Each child subtree gets its own feeder task. It dials the child, sends the
header, learns the offset the child already holds, then streams chunks read
back from the local copy (the client's source or this agent's spool) up to
what is available, then the end with the hash. A feeder holds one chunk at a
time, so memory stays bounded and a slow child only slows its own subtree.

When the stream to a child ends, any node of that subtree that has not
reported is repaired: the child itself is reported (UNREACHABLE when it
never answered or died, as it said otherwise), and each of its own child
subtrees with unreported nodes is adopted here, by a new feeder that resumes
from the offset the grandchild already holds. One dead relay therefore never
costs its subtree, and only the dead node is reported.

A child may ask for its stream again from an earlier offset (a node that
followed another's writing of a shared file and lost it, agent/follow.py):
the feeder goes back there, after the end too, until the child has answered.

With a bulk data plane (header.bulk, tree/bulk.py) the chunks go on the
connection the child offers; everything else stays on the Copy call.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import grpc

from shoal.core.wire import fpb, frpc, pb
from shoal.errors import PeerError
from shoal.tree import bulk as bulk_plane
from shoal.tree.channels import dial_state
from shoal.tree.subtree import names, result_event

DEFAULT_STALL = 10.0  # seconds without progress before a child is taken for dead
ABORT_GRACE = 3.0  # seconds feeders get to pass an abort on before being cancelled

# Dial a child: returns a ready channel or raises PeerError (the channel
# cache and TLS live with the caller: tree.channels.Channels.get).
Dialer = Callable[[pb.Subtree, float], Awaitable[grpc.aio.Channel]]


class Origin(Protocol):
    """Where a feeder reads the stream from."""

    async def read(self, offset: int, size: int) -> bytes | memoryview:
        """Bytes at offset (waits until written); b"" at the verified end."""
        ...

    def ready(self, offset: int, size: int) -> bytes | memoryview | None:
        """The bytes at offset if they are in memory now, else None (read() waits)."""
        ...

    def end(self) -> fpb.CopyEnd:
        """The end message; valid once read() has returned b"" once."""
        ...


def copy_result(node: str, state: int, reason: str = "", start_ns: int = 0) -> fpb.CopyEvent:
    return fpb.CopyEvent(event=result_event(node, state, reason, start_ns))


@dataclass
class Feed:
    """Everything feeders of one transfer on one level share."""

    header: fpb.CopyHeader  # template: tree is replaced per child
    origin: Origin
    dial: Dialer
    out: asyncio.Queue[fpb.CopyEvent]
    reported: set[str] = field(default_factory=set)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    aborted: str | None = None
    sent: dict[str, int] = field(default_factory=dict)  # child -> bytes sent (progress)
    streaming: set[str] = field(default_factory=set)  # children whose feeder runs
    _reading: set[asyncio.Future[bytes | memoryview]] = field(default_factory=set)

    def low_water(self) -> int | None:
        """The least offset a running feeder may still need (None: none runs),
        so memory kept for children is what they have not sent yet."""
        if not self.streaming:
            return None
        return min(self.sent.get(c, 0) for c in self.streaming)

    def start(self, child: pb.Subtree) -> None:
        task = asyncio.create_task(self._feed(child), name=f"feed-{child.name}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def wait(self) -> None:
        """Until every feeder, including adopted ones, has finished."""
        # asyncio.wait, not gather: cancelling the waiter must not cancel the
        # feeders, which still have to pass an abort on.
        while self.tasks:
            await asyncio.wait(list(self.tasks))

    async def abort(self, reason: str) -> None:
        """Tell every child to drop its spool now (Ctrl-C), then stop.

        Each feeder sends the abort on its own call (gRPC allows one writer):
        a feeder waiting for data is woken by cancelling that wait only.
        """
        self.aborted = reason
        for fut in list(self._reading):
            fut.cancel()
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=ABORT_GRACE)
        for t in list(self.tasks):
            t.cancel()

    async def _emit(self, ev: fpb.CopyEvent) -> None:
        if ev.HasField("event") and ev.event.HasField("result"):
            if ev.event.node in self.reported:
                return  # a resumed node reports again: the first word stands
            self.reported.add(ev.event.node)
        await self.out.put(ev)

    async def _feed(self, child: pb.Subtree) -> None:
        started = time.time_ns()
        timeout = self.header.connect_timeout or 5.0
        reason, state = "", int(pb.STATE_UNREACHABLE)
        self.streaming.add(child.name)
        try:
            channel = await self.dial(child, timeout)
        except PeerError as e:
            reason, state = e.message, dial_state(e)
        else:
            reason = await self._stream(channel, child)
        finally:
            self.streaming.discard(child.name)
        if self.aborted is not None:
            return
        # Repair: report the child if it said nothing, adopt what is left under it.
        if child.name not in self.reported:
            await self._emit(copy_result(child.name, state, reason, started))
        for grandchild in child.children:
            if any(n not in self.reported for n in names(grandchild)):
                self.start(grandchild)

    async def _stream(self, channel: grpc.aio.Channel, child: pb.Subtree) -> str:
        """Run one Copy call to child; returns why it ended early ("" if cleanly)."""
        stub = frpc.FilesStub(channel)
        header = fpb.CopyHeader()
        header.CopyFrom(self.header)
        header.tree.CopyFrom(child)
        call = stub.Copy()
        reader: asyncio.Task[str] | None = None
        sender: bulk_plane.Sender | None = None
        stall = self.header.stall_timeout or DEFAULT_STALL

        async def write(msg: fpb.CopyMessage) -> None:
            # A partitioned child sends no RST: without this its subtree would wait
            # for TCP keepalive. A slow child still completes writes, only later.
            await asyncio.wait_for(call.write(msg), stall)

        try:
            await write(fpb.CopyMessage(header=header))
            first = await asyncio.wait_for(call.read(), stall)
            if first is grpc.aio.EOF or not first.HasField("resume_offset"):
                return "relay refused the transfer"
            offset = first.resume_offset
            self.sent[child.name] = offset
            if header.bulk:
                offer = await asyncio.wait_for(call.read(), stall)
                if offer is grpc.aio.EOF:
                    return "relay ended before offering its bulk stream"
                if not offer.HasField("bulk"):
                    await self._emit(offer)  # it failed at once: its result
                else:
                    try:
                        sender = await bulk_plane.dial(
                            child.address, offer.bulk, header.bulk, stall
                        )
                    except OSError as e:
                        call.cancel()
                        return f"cannot open the bulk stream to {child.address}: {e.strerror or e}"
            again: asyncio.Queue[int] = asyncio.Queue()  # offsets the child asks from anew
            answered = asyncio.Event()  # the child's own result is in
            reader = asyncio.create_task(self._relay_events(call, child.name, again, answered))
            size = header.chunk_size or 512 * 1024
            while not reader.done() and self.aborted is None:
                while not again.empty():
                    offset = again.get_nowait()
                # Once the child answered it needs nothing more than the end.
                data = b"" if answered.is_set() else await self._read(offset, size)
                if data is None or not again.empty():
                    continue  # aborted, or asked again meanwhile (from that offset)
                if data:
                    if sender is not None:
                        async with asyncio.timeout(stall):
                            await sender.send(offset, data)
                    else:
                        chunk = fpb.CopyChunk(offset=offset, data=bytes(data))
                        await write(fpb.CopyMessage(chunk=chunk))
                    offset += len(data)
                    self.sent[child.name] = offset
                    continue
                await write(fpb.CopyMessage(end=self.origin.end()))
                # A follower that lost the file it followed may still ask again.
                if not await self._asked_again(again, answered, reader):
                    await call.done_writing()
                    break
            if not reader.done() and self.aborted is not None:
                await write(fpb.CopyMessage(abort=fpb.CopyAbort(reason=self.aborted)))
                await call.done_writing()
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError, OSError):
            pass  # the call is over; the reader drains what the child said before
        except TimeoutError:
            call.cancel()
            if reader is not None:
                reader.cancel()
            return f"no progress for {stall:g}s (link cut or node hung)"
        except BaseException:  # our origin failed or we were cancelled: stop the child
            call.cancel()
            if reader is not None:
                reader.cancel()
            raise
        finally:
            if sender is not None:
                sender.close()
        return await reader if reader is not None else "relay lost before answering"

    @staticmethod
    async def _asked_again(
        again: asyncio.Queue[int], answered: asyncio.Event, reader: asyncio.Task[str]
    ) -> bool:
        """After the end: True if the child asked for its stream again before
        it answered or its call ended."""
        ask = asyncio.ensure_future(again.get())
        got = asyncio.ensure_future(answered.wait())
        try:
            await asyncio.wait({ask, got, reader}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            got.cancel()
            if not ask.done():
                ask.cancel()
        if ask.done() and not ask.cancelled() and not answered.is_set():
            again.put_nowait(ask.result())
            return True
        return False

    async def _read(self, offset: int, size: int) -> bytes | memoryview | None:
        """origin.read, or None when abort() interrupted the wait."""
        held = self.origin.ready(offset, size)
        if held is not None:
            return held
        fut = asyncio.ensure_future(self.origin.read(offset, size))
        self._reading.add(fut)
        try:
            return await fut
        except asyncio.CancelledError:
            me = asyncio.current_task()
            if self.aborted is None or (me is not None and me.cancelling()):
                raise
            return None
        finally:
            self._reading.discard(fut)

    async def _relay_events(
        self, call: Any, child: str, again: asyncio.Queue[int], answered: asyncio.Event
    ) -> str:
        """Merge the child's events into ours; returns why the stream ended early."""
        try:
            while (ev := await call.read()) is not grpc.aio.EOF:
                if ev.HasField("resume_offset"):
                    again.put_nowait(ev.resume_offset)
                    continue
                if ev.HasField("event") and ev.event.node == child and ev.event.HasField("result"):
                    answered.set()
                await self._emit(ev)
        except grpc.aio.AioRpcError as e:
            return f"relay lost: {e.details() or e.code().name}"
        except asyncio.InvalidStateError:
            return "relay lost"
        return "relay ended before reporting"
