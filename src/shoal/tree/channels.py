"""Channels to children, kept and reused across requests, and dialling them.

A dial either gives a ready channel or raises PeerError. What will not get
better is said at once: a refused connection and a name that does not
resolve (unreachable), a failed TLS handshake (refused, with the certificate
problem in one line). Only silence waits for the connect timeout.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc

from shoal.core import tls
from shoal.core.keepalive import Keepalive
from shoal.core.wire import pb, rpc
from shoal.errors import ConfigError, PeerError


class Channels:
    """Open channels to children, kept and reused across requests.

    Keyed by (name, address): the name is the TLS target the peer must prove.
    """

    def __init__(self, credentials: Any | None, keepalive: Keepalive | None = None) -> None:
        self._credentials = credentials  # None: plain text (--insecure)
        self._channels: dict[tuple[str, str], grpc.aio.Channel] = {}
        self.keepalive = keepalive or Keepalive()

    def _open(self, name: str, address: str) -> grpc.aio.Channel:
        return open_channel(name, address, self._credentials, self.keepalive)

    def channel(self, name: str, address: str) -> grpc.aio.Channel:
        """The kept channel to name at address, opened if need be, not waited for."""
        key = (name, address)
        ch = self._channels.get(key)
        if ch is None:
            ch = self._channels[key] = self._open(name, address)
        return ch

    async def get(self, tree: pb.Subtree, timeout: float) -> grpc.aio.Channel:
        """A ready channel to tree's node, or PeerError (see the module docstring)."""
        key = (tree.name, tree.address)
        ch = self.channel(tree.name, tree.address)
        try:
            async with asyncio.timeout(timeout if timeout > 0 else None):
                while (state := ch.get_state(try_to_connect=True)) != READY:
                    if state == TRANSIENT_FAILURE:
                        failed = _final(await _last_error(ch), tree, self._credentials is not None)
                        if failed is not None:
                            raise failed
                    await ch.wait_for_state_change(state)
            return ch
        except (TimeoutError, PeerError) as e:
            # Forget it: a later request should dial afresh (the peer may be back).
            if isinstance(e, PeerError):
                err = e
            else:
                why = await _last_error(ch)
                err = PeerError(f"cannot connect to {tree.address} within {timeout:g}s: {why}")
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


def open_channel(
    name: str, address: str, credentials: Any | None, keepalive: Keepalive
) -> grpc.aio.Channel:
    """A channel to node ``name`` at ``address`` (connected on first use);
    with credentials, the node must prove it is ``name``."""
    opts: list[tuple[str, Any]] = keepalive.channel_options()
    if credentials is None:
        return grpc.aio.insecure_channel(address, options=opts)
    opts.append(("grpc.ssl_target_name_override", name))
    return grpc.aio.secure_channel(address, credentials, options=opts)


def dial_node_service(
    name: str, address: str, identity: tls.Identity | None, keepalive: Keepalive | None = None
) -> tuple[grpc.aio.Channel, Any]:
    """(channel, NodeServiceStub) to the faas NodeService of agent ``name`` at
    ``address``, presenting identity (an operator's or the controller's, or
    None under --insecure). The caller closes the channel. TLSError when a
    certificate file cannot be read."""
    from shoal.core.wire.shoal.v1 import faas_pb2_grpc  # out of every command's start-up

    creds = tls.channel_credentials(identity) if identity is not None else None
    ch = open_channel(name, address, creds, keepalive or Keepalive())
    return ch, faas_pb2_grpc.NodeServiceStub(ch)


READY = grpc.ChannelConnectivity.READY
TRANSIENT_FAILURE = grpc.ChannelConnectivity.TRANSIENT_FAILURE


def _final(why: str, tree: pb.Subtree, tls: bool) -> PeerError | None:
    """The error a connection attempt that will not get better gives, or None."""
    text = why.lower()
    host = tree.address.rpartition(":")[0].strip("[]") or tree.address
    if "connection refused" in text:
        return PeerError(f"unreachable: connection refused by {tree.address} (no agent there)")
    if any(
        w in text for w in ("dns resolution failed", "errors resolving", "domain name not found")
    ):
        return PeerError(f"unreachable: name does not resolve: {host}")
    if "hostname verification" in text or ("peer name" in text and "not in peer cert" in text):
        return PeerError(
            f"refused: TLS: the node's certificate is not for {tree.name}", refused=True
        )
    if any(w in text for w in ("certificate_verify_failed", "certificate verify failed",
                               "certificate signature failure", "unknown ca")):  # fmt: skip
        return PeerError(
            "refused: TLS: the node's certificate is not signed by our CA", refused=True
        )
    if is_tls(why):
        return PeerError(f"refused: TLS handshake failed: {why}", refused=True)
    if tls and "socket closed" in text:
        # TLS 1.3: a server that rejects our certificate just closes.
        return PeerError(
            "refused: TLS: the node closed the handshake: is our certificate from its CA?",
            refused=True,
        )
    return None


def dial_state(e: PeerError) -> int:
    """The wire state a failed dial reports for the node."""
    return pb.STATE_REFUSED if e.refused else pb.STATE_UNREACHABLE


def is_tls(text: str) -> bool:
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


def listen(server: grpc.aio.Server, address: str, identity: tls.Identity | None) -> int:
    """Serve on host:port (port 0 picks one) with mutual TLS, or plain text
    when identity is None; the port. grpc raises RuntimeError (or returns 0)
    when it cannot bind: said in one line."""
    try:
        if identity is None:
            port = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, tls.server_credentials(identity))
    except RuntimeError:
        port = 0
    if port == 0:
        raise ConfigError(
            f"cannot listen on {address}: the port is in use or the address is not ours"
        )
    return port
