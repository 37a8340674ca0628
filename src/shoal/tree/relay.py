"""Relaying a task down the tree: the same code on agents and on the client.

A node relays the request it got to each child subtree concurrently and puts
every event it receives into one bounded queue (through `emit`), so a slow
reader upstream slows the children down through gRPC flow control instead of
growing memory. The client is a root without a local part: it relays to the
roots.

Faults: a child that cannot be connected within connect_timeout is reported
UNREACHABLE and its own children are served directly (recursively, same
rule). When a child's stream breaks (it died, hung, or its link was cut:
keepalive finds the last two within a bounded time), the child is reported
and each of its child subtrees with a node still unreported is adopted: served
directly with the same task id, so a grandchild that already runs it attaches
the new caller (see agent/runs.py) and one that never got it starts it. Nothing
runs twice and no finished node's result is lost.

Cancelling on purpose (Ctrl-C, a caller gone for good) tells each child to
stop at once (Cancel) before dropping its stream; a stream that merely breaks
leaves the child waiting a while for an adopter.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

import grpc

from shoal.core.wire import pb, rpc
from shoal.errors import PeerError
from shoal.tree.channels import Channels, dial_state, is_tls
from shoal.tree.subtree import result_event, walk

Emit = Callable[[pb.TaskEvent], Awaitable[None]]
CANCEL_TIMEOUT = 2.0  # seconds a Cancel to a child may take before we just drop it


def _refused(e: grpc.aio.AioRpcError) -> bool:
    return e.code() in (
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
    ) or is_tls(e.details() or "")


class Relay:
    """One request's relaying below one node (or the client).

    ``reported`` is shared by every child stream and adoption, so results that
    an attached grandchild replays are passed up once. ``deliberate``: stopping
    this relay stops the children too (the client; an agent whose work was
    cancelled on purpose); otherwise they wait to be adopted.
    """

    def __init__(self, chans: Channels, emit: Emit, *, deliberate: bool = False) -> None:
        self.chans = chans
        self._emit = emit
        self.deliberate = deliberate
        self.reported: set[str] = set()
        self._passed: dict[tuple[str, int], int] = {}  # (node, stream) -> bytes passed up

    async def emit(self, ev: pb.TaskEvent) -> None:
        kind = ev.WhichOneof("kind")
        if kind == "result":
            if ev.node in self.reported:
                return
            self.reported.add(ev.node)
        elif kind == "output":
            out = ev.output
            key = (ev.node, out.stream)
            have = self._passed.get(key, 0)
            end = out.offset + len(out.data)
            if end <= have:
                return  # replayed by a node we took over: already passed up
            if out.offset < have:
                ev = pb.TaskEvent(node=ev.node, output=out)
                ev.output.data = out.data[have - out.offset :]
                ev.output.offset = have
            self._passed[key] = end
        await self._emit(ev)

    async def serve(self, req: pb.TaskRequest, children: list[pb.Subtree]) -> None:
        """Serve each child subtree with req (its tree set per child)."""
        await self.serve_each([(req, c) for c in children])

    async def serve_each(self, work: list[tuple[pb.TaskRequest, pb.Subtree]]) -> None:
        if not work:
            return
        tasks = [asyncio.create_task(self.child(r, c)) for r, c in work]
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _unreported(self, tree: pb.Subtree) -> bool:
        return any(n.name not in self.reported for n in walk(tree))

    async def child(self, req: pb.TaskRequest, child: pb.Subtree) -> None:
        """Serve `child`'s subtree through `child`; never returns with a node unreported."""
        start = time.time_ns()
        try:
            channel = await self.chans.get(child, req.connect_timeout)
        except PeerError as e:
            await self.emit(result_event(child.name, dial_state(e), e.message, start))
            await self.serve(req, [c for c in child.children if self._unreported(c)])
            return
        sub = pb.TaskRequest()
        sub.CopyFrom(req)
        sub.tree.CopyFrom(child)
        call = rpc.AgentStub(channel).Run(sub)
        try:
            async for ev in call:
                await self.emit(ev)
            state: int = pb.STATE_FAILED
            why = "its relay ended the stream without a result"
        except asyncio.CancelledError:
            if self.deliberate and req.task_id:
                await _cancel(channel, req.task_id, child.name)
            call.cancel()
            raise
        except grpc.aio.AioRpcError as e:
            await self.chans.forget(child)
            if _refused(e):
                state, why = pb.STATE_REFUSED, f"refused: {e.details()}"
            else:
                # Died, hung or cut off: report it, adopt what is left under it.
                why = f"stream from {child.name} broke: {e.code().name} {e.details()}"
                if child.name not in self.reported:
                    await self.emit(result_event(child.name, pb.STATE_UNREACHABLE, why, start))
                await self.serve(req, [c for c in child.children if self._unreported(c)])
                return
        for node in walk(child):
            if node.name not in self.reported:
                text = why if node.name == child.name else f"via {child.name}: {why}"
                await self.emit(result_event(node.name, state, text, start))


async def _cancel(channel: grpc.aio.Channel, task_id: str, node: str) -> None:
    """Tell a child to stop this task now; a child that cannot hear it stops
    on its own once its adoption wait is over."""
    with contextlib.suppress(grpc.aio.AioRpcError, TimeoutError):
        await rpc.AgentStub(channel).Cancel(
            pb.CancelRequest(task_id=task_id, node=node), timeout=CANCEL_TIMEOUT
        )
