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
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import grpc

from shoal.core.keepalive import Keepalive
from shoal.core.wire import pb, rpc

Emit = Callable[[pb.TaskEvent], Awaitable[None]]
CANCEL_TIMEOUT = 2.0  # seconds a Cancel to a child may take before we just drop it


class DialError(ConnectionError):
    def __init__(self, reason: str, state: int = pb.STATE_UNREACHABLE) -> None:
        super().__init__(reason)
        self.reason = reason
        self.state = state


def walk(tree: pb.Subtree) -> Iterator[pb.Subtree]:
    yield tree
    for c in tree.children:
        yield from walk(c)


def result_event(
    node: str, state: int, reason: str = "", start_ns: int = 0, exit_code: int = 0
) -> pb.TaskEvent:
    now = time.time_ns()
    res = pb.Result(state=state, reason=reason, exit_code=exit_code)  # type: ignore[arg-type]
    res.timing.start_ns = start_ns or now
    res.timing.end_ns = now
    return pb.TaskEvent(node=node, result=res)


class Channels:
    """Open channels to children, kept and reused across requests.

    Keyed by (name, address): the name is the TLS target the peer must prove.
    """

    def __init__(self, credentials: Any | None, keepalive: Keepalive | None = None) -> None:
        self._credentials = credentials  # None: plain text (--insecure)
        self._channels: dict[tuple[str, str], grpc.aio.Channel] = {}
        self.keepalive = keepalive or Keepalive()

    def _open(self, name: str, address: str) -> grpc.aio.Channel:
        opts: list[tuple[str, Any]] = self.keepalive.channel_options()
        if self._credentials is None:
            return grpc.aio.insecure_channel(address, options=opts)
        opts.append(("grpc.ssl_target_name_override", name))
        return grpc.aio.secure_channel(address, self._credentials, options=opts)

    async def get(self, tree: pb.Subtree, timeout: float) -> grpc.aio.Channel:
        """A ready channel to tree's node, or DialError: REFUSED at once when the
        TLS handshake fails (it will not get better), UNREACHABLE after timeout."""
        key = (tree.name, tree.address)
        ch = self._channels.get(key)
        if ch is None:
            ch = self._channels[key] = self._open(tree.name, tree.address)
        try:
            async with asyncio.timeout(timeout if timeout > 0 else None):
                while (state := ch.get_state(try_to_connect=True)) != READY:
                    if state == TRANSIENT_FAILURE:
                        why = await _last_error(ch)
                        if _is_tls(why):
                            raise DialError(f"refused: {why}", pb.STATE_REFUSED)
                        if self._credentials is not None and "socket closed" in why.lower():
                            # TLS 1.3: a server that rejects our certificate just closes.
                            raise DialError(
                                f"refused: the peer closed the TLS handshake ({why}); "
                                "is our certificate from its CA?",
                                pb.STATE_REFUSED,
                            )
                    await ch.wait_for_state_change(state)
            return ch
        except (TimeoutError, DialError) as e:
            # Forget it: a later request should dial afresh (the peer may be back).
            if isinstance(e, DialError):
                err = e
            else:
                why = await _last_error(ch)
                err = DialError(f"cannot connect to {tree.address} within {timeout:g}s: {why}")
            self._channels.pop(key, None)
            await ch.close()
            raise err from None

    async def forget(self, tree: pb.Subtree) -> None:
        ch = self._channels.pop((tree.name, tree.address), None)
        if ch is not None:
            await ch.close()

    async def close(self) -> None:
        chans, self._channels = list(self._channels.values()), {}
        for ch in chans:
            await ch.close(grace=None)


READY = grpc.ChannelConnectivity.READY
TRANSIENT_FAILURE = grpc.ChannelConnectivity.TRANSIENT_FAILURE


def _is_tls(text: str) -> bool:
    t = text.lower()
    return any(w in t for w in ("handshake", "ssl_error", "certificate"))


async def _last_error(ch: grpc.aio.Channel) -> str:
    """Why a channel is not connected: a call that does not wait for ready
    fails at once with the channel's last error (an agent that gets it
    through a race answers INVALID_ARGUMENT: it carries no task)."""
    try:
        async for _ in rpc.AgentStub(ch).Run(pb.TaskRequest(), wait_for_ready=False, timeout=2):
            pass
    except grpc.aio.AioRpcError as e:
        text = e.details() or e.code().name
        return text.removeprefix("failed to connect to all addresses; last error: ")
    return "unknown"


def _refused(e: grpc.aio.AioRpcError) -> bool:
    return e.code() in (
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
    ) or _is_tls(e.details() or "")


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
        except DialError as e:
            await self.emit(result_event(child.name, e.state, e.reason, start))
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
