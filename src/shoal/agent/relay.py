"""Relaying a task down the tree: the same code on agents and on the client.

A node relays the request it got to each child subtree concurrently and puts
every event it receives into one bounded queue (through `emit`), so a slow
reader upstream slows the children down through gRPC flow control instead of
growing memory. The client is a root without a local part: it calls
`relay_children` with the roots.

Faults: a child that cannot be connected within connect_timeout is reported
UNREACHABLE and its own children are served directly (recursively, same
rule). When a child's stream breaks, every node under it that has not
reported gets a result with the reason, so no node is ever missing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import grpc

from shoal.core.wire import pb, rpc

ACCEPTED = "shoal-accepted"  # initial metadata key: the node took the request
Emit = Callable[[pb.TaskEvent], Awaitable[None]]


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

    def __init__(self, credentials: Any | None) -> None:
        self._credentials = credentials  # None: plain text (--insecure)
        self._channels: dict[tuple[str, str], grpc.aio.Channel] = {}

    def _open(self, name: str, address: str) -> grpc.aio.Channel:
        opts: list[tuple[str, Any]] = [
            ("grpc.keepalive_time_ms", 30_000),
            ("grpc.keepalive_permit_without_calls", 1),
        ]
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
    return e.code() == grpc.StatusCode.UNAUTHENTICATED or _is_tls(e.details() or "")


async def relay_child(req: pb.TaskRequest, child: pb.Subtree, chans: Channels, emit: Emit) -> None:
    """Serve `child`'s subtree through `child`; never returns with a node unreported."""
    start = time.time_ns()
    try:
        channel = await chans.get(child, req.connect_timeout)
    except DialError as e:
        await emit(result_event(child.name, e.state, e.reason, start))
        await relay_children(req, list(child.children), chans, emit)
        return
    sub = pb.TaskRequest()
    sub.CopyFrom(req)
    sub.tree.CopyFrom(child)
    reported: set[str] = set()
    accepted = False
    call = rpc.AgentStub(channel).Run(sub)
    try:
        md = await call.initial_metadata()
        # A leaf does not announce itself (nothing under it could be run twice).
        accepted = not child.children or (md is not None and any(k == ACCEPTED for k, _ in md))
        async for ev in call:
            if ev.HasField("result"):
                reported.add(ev.node)
            await emit(ev)
        return_reason = "its relay ended the stream without a result"
        state: int = pb.STATE_FAILED
    except asyncio.CancelledError:
        call.cancel()
        raise
    except grpc.aio.AioRpcError as e:
        if not accepted and e.code() == grpc.StatusCode.UNAVAILABLE and not _refused(e):
            # Never taken (e.g. the agent died since we dialled), so it is safe to
            # serve the children directly. Once taken, nothing is ever run twice.
            await chans.forget(child)
            await emit(result_event(child.name, pb.STATE_UNREACHABLE, e.details() or "", start))
            await relay_children(req, list(child.children), chans, emit)
            return
        if _refused(e):
            state, return_reason = pb.STATE_REFUSED, f"refused: {e.details()}"
        else:
            state = pb.STATE_UNREACHABLE
            return_reason = f"stream from {child.name} broke: {e.code().name} {e.details()}"
        await chans.forget(child)
    for node in walk(child):
        if node.name not in reported:
            why = return_reason if node.name == child.name else f"via {child.name}: {return_reason}"
            await emit(result_event(node.name, state, why, start))


async def relay_children(
    req: pb.TaskRequest, children: list[pb.Subtree], chans: Channels, emit: Emit
) -> None:
    if not children:
        return
    tasks = [asyncio.create_task(relay_child(req, c, chans, emit)) for c in children]
    try:
        await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
