"""The bulk data plane of a copy: one Copy call's bytes on a TCP connection of
their own, beside its gRPC control stream (proto/shoal/v1/files.proto).

Why: through gRPC every chunk is a protobuf copy, HTTP/2 framing and Python
TLS records, several times what the bytes themselves cost to receive and
write (benchmarks/bulk_floors.py). Here a frame is a 12-byte header (offset,
length), the data and a 16-byte tag, written with one sendmsg and read
straight into the buffer that becomes the spool write; a relay forwards it
to children from that same buffer (`Recent`).

Security: the receiving child makes a fresh AES-256 key and a one-time token
for each Copy call and gives them to its parent over the mutual-TLS control
stream, so only the peer the CA vouched for there can feed this connection.
A frame's nonce is its sequence number on the connection and its offset: a
frame altered, dropped, replayed, reordered or moved fails its tag, and the
receiver refuses the stream before writing a byte of it.

- "aead" (the default): AES-256-GCM, encrypted and authenticated. With AES-NI
  it costs ~0.1 s/GiB, where Python's ssl module costs 0.2-0.5 s/GiB more
  than plain TCP on each side.
- "mac": the bytes in the clear with an AES-GMAC tag (integrity and
  authenticity without secrecy, as sbcast and Kascade send plain bytes), for
  trusted cluster networks only; it is asked for explicitly and said loudly.

Kernel TLS, which would let sendfile work under TLS, is not used: Python 3.11
has no ssl.OP_ENABLE_KTLS, and this kernel has no `tls` module. Nor is
sendfile: a per-connection tag needs the bytes in memory anyway, and the
copy it would save measured 0.03-0.07 s/GiB here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
import struct
import sys
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shoal.core.wire import fpb
from shoal.errors import TransferError

log = logging.getLogger("shoal.agent.files")

MODES = ("aead", "mac", "grpc")  # grpc: the chunks in the control stream itself
DEFAULT_MODE = "aead"
TOKEN = 16
TAG = 16
HEADER = struct.Struct("!QI")  # offset, length
_NONCE = struct.Struct("!IQ")  # sequence number, offset
ACCEPT_TIMEOUT = 10.0  # seconds a connection may take to say its token
MAX_HANDSHAKES = 256  # connections at once that have not said their token yet
RECENT_BYTES = 32 << 20  # chunks a relay keeps in memory for children that keep up


def wire_mode(mode: str) -> str:
    """The header's `bulk` for a setting; TransferError-free check for users."""
    if mode not in MODES:
        raise ValueError(f"bulk mode must be one of {', '.join(MODES)}, not {mode!r}")
    return "" if mode == "grpc" else mode


class _Seal:
    """One direction of one connection: the key and the frame counter."""

    def __init__(self, key: bytes, mode: str) -> None:
        if mode not in ("aead", "mac"):
            raise TransferError(f"unknown bulk mode {mode!r}")
        self._gcm = AESGCM(key)
        self.mode = mode
        self.seq = 0

    def nonce(self, offset: int) -> bytes:
        if self.seq >= 1 << 32:
            raise TransferError("bulk stream too long for one connection")
        n = _NONCE.pack(self.seq, offset)
        self.seq += 1
        return n


class Sender(_Seal):
    """The parent's end: frames to one child."""

    def __init__(self, sock: socket.socket, key: bytes, mode: str) -> None:
        super().__init__(key, mode)
        self.sock = sock
        self._out = bytearray()  # the sealed frame, this connection's one buffer

    async def send(self, offset: int, data: bytes | memoryview) -> None:
        """One frame; raises OSError when the connection broke."""
        hdr = HEADER.pack(offset, len(data))
        nonce = self.nonce(offset)
        if self.mode == "aead":
            if len(self._out) < len(data) + TAG:
                self._out = bytearray(len(data) + TAG)
            out = memoryview(self._out)[: len(data) + TAG]
            self._gcm.encrypt_into(nonce, data, hdr, out)
            await _sendv(self.sock, [hdr, out])
        else:
            await _sendv(self.sock, [hdr, data, self._gcm.encrypt(nonce, b"", data)])

    def close(self) -> None:
        self.sock.close()


async def dial(address: str, offer: fpb.BulkOffer, mode: str, timeout: float) -> Sender:
    """Connect to the port a child offered, on the host of its address."""
    host = address.rpartition(":")[0].strip("[]") or address
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, offer.port, type=socket.SOCK_STREAM)
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        async with asyncio.timeout(timeout):
            await loop.sock_connect(sock, addr)
            await loop.sock_sendall(sock, offer.token)
    except BaseException:
        sock.close()
        raise
    return Sender(sock, offer.key, mode)


async def _sendv(sock: socket.socket, parts: list[bytes | memoryview]) -> None:
    views = [memoryview(p).cast("B") for p in parts]
    loop = asyncio.get_running_loop()
    while views:
        try:
            n = sock.sendmsg(views)
        except (BlockingIOError, InterruptedError):
            fut = loop.create_future()
            loop.add_writer(sock.fileno(), fut.set_result, None)
            try:
                await fut
            finally:
                loop.remove_writer(sock.fileno())
            continue
        while n:
            first = len(views[0])
            if n >= first:
                n -= first
                views.pop(0)
            else:
                views[0] = views[0][n:]
                n = 0


class Receiver(_Seal):
    """The child's end: frames from its parent, opened and checked."""

    def __init__(self, sock: socket.socket, key: bytes, mode: str, limit: int) -> None:
        super().__init__(key, mode)
        self.sock = sock
        self.limit = limit  # the transfer's chunk size: no frame is longer
        self._sealed: bytearray | None = None  # aead: the frame as it came
        self._pool = Buffers(limit + TAG)

    async def frames(self) -> AsyncIterator[tuple[int, memoryview]]:
        """(offset, data) of each frame, authenticated; ends at a clean EOF.
        Raises TransferError on a frame that fails its tag or is malformed."""
        hdr = bytearray(HEADER.size)
        while True:
            if not await _fill(self.sock, memoryview(hdr), eof_ok=True):
                return
            offset, length = HEADER.unpack(hdr)
            if length > self.limit:
                raise TransferError(
                    f"bulk stream refused: frame of {length} bytes at offset {offset}"
                    f" (chunks are at most {self.limit})"
                )
            # aead: the sealed frame in one buffer, opened into a pooled one
            # (what is kept for children); mac: the frame in a pooled one
            pooled = memoryview(self._pool.take())
            data = pooled[:length]
            if self.mode == "aead":
                if self._sealed is None:
                    self._sealed = bytearray(self.limit + TAG)
                view = memoryview(self._sealed)[: length + TAG]
            else:
                view = pooled[: length + TAG]
            await _fill(self.sock, view)
            nonce = self.nonce(offset)
            try:
                if self.mode == "aead":
                    self._gcm.decrypt_into(nonce, view, bytes(hdr), data)
                else:
                    self._gcm.decrypt(nonce, view[length:], view[:length])
            except InvalidTag:
                raise TransferError(
                    f"bulk stream refused: the chunk at offset {offset} failed"
                    " authentication (altered, replayed or reordered in flight)"
                ) from None
            yield offset, data


async def _fill(sock: socket.socket, view: memoryview, eof_ok: bool = False) -> bool:
    loop = asyncio.get_running_loop()
    got = 0
    while got < len(view):
        n = await loop.sock_recv_into(sock, view[got:])
        if not n:
            if eof_ok and got == 0:
                return False
            raise TransferError("bulk stream cut in the middle of a chunk")
        got += n
    return True


@dataclass
class _Wait:
    key: bytes
    fut: asyncio.Future[socket.socket]


@dataclass
class Listener:
    """An agent's bulk port: connections say a token the agent offered."""

    host: str
    port: int = 0
    _sock: socket.socket | None = None
    _task: asyncio.Task[None] | None = None
    _waiting: dict[bytes, _Wait] = field(default_factory=dict)
    _handshakes: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self) -> int:
        infos = await asyncio.get_running_loop().getaddrinfo(
            self.host, self.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        family, _, _, _, addr = infos[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(addr)
        except OSError:
            sock.close()
            raise
        sock.listen(128)
        sock.setblocking(False)
        self._sock = sock
        self.port = sock.getsockname()[1]
        self._task = asyncio.create_task(self._accept(), name="bulk-accept")
        return self.port

    def offer(self) -> tuple[fpb.BulkOffer, asyncio.Future[socket.socket]]:
        """A fresh token and key for one Copy call; the future gets its connection."""
        token, key = secrets.token_bytes(TOKEN), AESGCM.generate_key(256)
        fut: asyncio.Future[socket.socket] = asyncio.get_running_loop().create_future()
        self._waiting[token] = _Wait(key, fut)
        fut.add_done_callback(lambda _f: self._waiting.pop(token, None))
        return fpb.BulkOffer(port=self.port, token=token, key=key), fut

    async def _accept(self) -> None:
        assert self._sock is not None
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, peer = await loop.sock_accept(self._sock)
            except OSError as e:  # out of descriptors: the next try may do
                log.warning("bulk port %d: accept failed: %s", self.port, e.strerror)
                await asyncio.sleep(0.1)
                continue
            if len(self._handshakes) >= MAX_HANDSHAKES:  # a flood of idle sockets
                conn.close()
                continue
            conn.setblocking(False)
            task = asyncio.create_task(self._handshake(conn, peer))
            self._handshakes.add(task)
            task.add_done_callback(self._handshakes.discard)

    async def _handshake(self, conn: socket.socket, peer: object) -> None:
        token = bytearray(TOKEN)
        try:
            async with asyncio.timeout(ACCEPT_TIMEOUT):
                await _fill(conn, memoryview(token))
        except (TimeoutError, TransferError, OSError):
            conn.close()
            return
        wait = self._waiting.pop(bytes(token), None)
        if wait is None or wait.fut.done():
            log.warning("bulk port %d: connection from %s with an unknown token: closed",
                        self.port, peer)  # fmt: skip
            conn.close()
            return
        wait.fut.set_result(conn)

    async def close(self) -> None:
        for t in [self._task, *self._handshakes]:
            if t is not None:
                t.cancel()
        for w in list(self._waiting.values()):
            w.fut.cancel()
        if self._sock is not None:
            self._sock.close()


async def accept(
    fut: asyncio.Future[socket.socket], offer: fpb.BulkOffer, mode: str, limit: int, timeout: float
) -> Receiver:
    """The connection for an offer, once the parent dialled it."""
    try:
        sock = await asyncio.wait_for(fut, timeout)
    except TimeoutError:
        raise TransferError(
            f"the parent never opened its bulk stream within {timeout:g}s"
        ) from None
    return Receiver(sock, offer.key, mode, limit)


class Buffers:
    """Chunk buffers used again once nothing views them any more (a chunk in
    Recent, a child's send in progress): a fresh buffer per chunk costs a
    zero-fill and page faults, as much as the bytes' own copy. Recent lets
    chunks go oldest first, so the oldest buffer is the one to try."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.keep = RECENT_BYTES // size + 4  # what Recent holds, and a few in use
        self._ring: deque[bytearray] = deque()

    def take(self) -> bytearray:
        # referenced only by the ring and getrefcount's argument: no view is alive
        if self._ring and sys.getrefcount(self._ring[0]) == 2:
            self._ring.rotate(-1)
            return self._ring[-1]
        buf = bytearray(self.size)
        if len(self._ring) < self.keep:
            self._ring.append(buf)
        return buf


class Recent:
    """The last chunks written, kept in memory (RECENT_BYTES) so that children
    that keep up are fed without reading the spool back; a child that fell
    behind gets None and reads the spool."""

    def __init__(self) -> None:
        self._chunks: deque[tuple[int, memoryview]] = deque()
        self._bytes = 0

    def add(self, offset: int, data: bytes | memoryview, needed: int | None = 0) -> None:
        """needed: the least offset a child may still want from memory (None:
        no child is fed); chunks wholly before it are let go at once, so a
        leaf or children that keep up hold a few buffers, not RECENT_BYTES."""
        view = memoryview(data).cast("B")
        self._chunks.append((offset, view))
        self._bytes += len(view)
        while len(self._chunks) > 2:
            start, old = self._chunks[0]
            if self._bytes <= RECENT_BYTES and needed is not None and start + len(old) > needed:
                break
            self._chunks.popleft()
            self._bytes -= len(old)

    def get(self, offset: int, size: int) -> memoryview | None:
        for start, view in reversed(self._chunks):
            if start <= offset < start + len(view):
                return view[offset - start : offset - start + size]
            if start + len(view) <= offset:
                return None
        return None

    def clear(self) -> None:
        self._chunks.clear()
        self._bytes = 0


def drop(fut: asyncio.Future[socket.socket]) -> None:
    """An offer's call is over: no connection may arrive for it any more, and
    one that arrived but was never read is closed."""
    if not fut.done():
        fut.cancel()
    elif not fut.cancelled() and fut.exception() is None:
        close_quietly(fut.result())


def close_quietly(sock: socket.socket | None) -> None:
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.close()
