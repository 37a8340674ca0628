"""HTTP/1.1 to the Jobe backends: keep-alive connections per backend, written
on asyncio and httptools (the C parser uvicorn uses).

Proxying is the gateway's whole CPU budget, and a general client (aiohttp)
spends most of it on generality: here the request head is built once per
URL, sent in one write and parsed once (benchmarks/results/gateway.md).
Every transport failure (refused, reset, timed out, a truncated, oversize or
garbled answer) is one exception, UpstreamError, which the caller turns into
a retry elsewhere. A connection is reused only after a complete answer the
server allows to keep alive; anything else, an answer nobody asked for
included, closes it.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

import httptools

from shoal.errors import UpstreamError

# s an idle connection is reused: under Apache's default KeepAliveTimeout (5 s),
# so a server's close is rarely met in flight, and a NAT's silent drop never
IDLE_MAX = 4.0
MAX_IDLE = 32  # idle connections kept per backend (each may hold an Apache worker)
MAX_HEAD = 64 * 1024  # bytes of status line and headers
MAX_ANSWER = 64 * 1024 * 1024  # bytes of body: a backend gone mad cannot fill our memory


class _Abort(Exception):
    """Raised in a parser callback to stop the parse (the waiter already has its error)."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes


@dataclass(frozen=True)
class Target:
    key: tuple[str, str, int]  # scheme, host, port: one pool each
    host: str
    port: int
    tls: bool
    path: bytes
    host_header: bytes


@lru_cache(maxsize=1024)
def target(url: str) -> Target:
    try:
        u = urlsplit(url)
        port = u.port
    except ValueError as e:
        raise UpstreamError(f"bad URL {url!r}: {e}") from None
    if u.scheme not in ("http", "https") or not u.hostname:
        raise UpstreamError(f"not an http(s) URL: {url!r}")
    tls = u.scheme == "https"
    port = port or (443 if tls else 80)
    path = (u.path or "/") + (f"?{u.query}" if u.query else "")
    host = f"[{u.hostname}]" if ":" in u.hostname else u.hostname  # never the userinfo
    return Target(
        (u.scheme, u.hostname, port),
        u.hostname,
        port,
        tls,
        path.encode(),
        f"{host}:{port}".encode(),
    )


class _Conn(asyncio.Protocol):
    """One connection; one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self.got_bytes = False  # of the current answer: a reused connection that
        # fails before any is a stale one, safe to try afresh
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[Answer] | None = None
        self._body: list[bytes] = []
        self._size = 0
        self._head = 0
        self._head_only = False
        self._headers_done = False
        self._framed = False  # Content-Length or chunked: the answer's end is in the stream

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:  # nothing asked: a server talking out of turn
            self.close()
            return
        self.got_bytes = True
        if not self._headers_done:
            if self._head > MAX_HEAD:  # earlier reads were all headers, and they go on
                self._fail(UpstreamError(f"answer headers larger than {MAX_HEAD} bytes"))
                return
            self._head += len(data)
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as e:
            self._fail(UpstreamError(f"bad HTTP answer: {type(e).__name__} {e}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._ended(exc)

    def eof_received(self) -> bool | None:
        self.closed = True
        self._ended(None)
        return None  # let the transport close

    def _ended(self, exc: Exception | None) -> None:
        if exc is None and self._headers_done and not self._framed:
            self._complete(keep=False)  # an answer delimited by the close itself
        else:
            self._fail(UpstreamError(f"connection closed before the answer ({exc or 'EOF'})"))

    def _abort(self, why: str) -> None:
        self._fail(UpstreamError(why))
        raise _Abort(why)

    # httptools callbacks
    def on_message_begin(self) -> None:
        if self._waiter is None:  # a second answer after ours: out of step
            self.close()
            raise _Abort("an answer nobody asked for")
        self._headers_done = self._framed = False
        self._body, self._size = [], 0

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) + len(value) > MAX_HEAD:
            self._abort(f"answer header larger than {MAX_HEAD} bytes")
        n = name.lower()
        if n == b"content-length" or (n == b"transfer-encoding" and b"chunked" in value.lower()):
            self._framed = True

    def _interim(self) -> bool:
        """1xx (but 101): a provisional answer (100 Continue, 103 Early Hints); the
        real one follows on the same connection."""
        s = self._parser.get_status_code()
        return 100 <= s < 200 and s != 101

    def on_headers_complete(self) -> None:
        if self._interim():
            return
        if self._parser.get_status_code() == 101:  # we never ask to switch protocols
            self._abort("bad HTTP answer: HttpParserUpgrade (101 Switching Protocols)")
        self._headers_done = True
        if self._head_only:  # no body follows an answer to HEAD, whatever Content-Length says
            self._complete(keep=False)

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > MAX_ANSWER:
            self._abort(f"answer larger than {MAX_ANSWER} bytes")
        self._body.append(body)

    def on_message_complete(self) -> None:
        if not self._interim():
            self._complete(keep=self._parser.should_keep_alive())

    # ours
    def _complete(self, keep: bool) -> None:
        w, self._waiter = self._waiter, None
        if w is None or w.done():
            return
        w.set_result(Answer(self._parser.get_status_code(), b"".join(self._body)))
        self._body, self._size = [], 0
        if not keep:
            self.close()

    def _fail(self, e: Exception) -> None:
        w, self._waiter = self._waiter, None
        self.close()
        if w is not None and not w.done():
            w.set_exception(e)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    async def exchange(self, request: bytes, head_only: bool) -> Answer:
        assert self.transport is not None and self._waiter is None
        self._head_only = head_only
        # no answer has begun: an EOF now is a failure, never an answer of the last one's
        self._headers_done = self._framed = self.got_bytes = False
        self._head = 0  # header bytes before this answer's headers end, 1xx ones included
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self._waiter


class Upstream:
    def __init__(self, timeout: float, idle_max: float = IDLE_MAX) -> None:
        self.timeout = timeout
        self.idle_max = idle_max
        self._idle: dict[tuple[str, str, int], list[_Conn]] = {}
        self._ssl: ssl.SSLContext | None = None

    async def close(self) -> None:
        for conns in self._idle.values():
            for c in conns:
                c.close()
        self._idle.clear()

    async def _connect(self, t: Target) -> _Conn:
        loop = asyncio.get_running_loop()
        if t.tls and self._ssl is None:
            self._ssl = ssl.create_default_context()
        try:
            _, conn = await loop.create_connection(
                _Conn, t.host, t.port, ssl=self._ssl if t.tls else None
            )
        except (OSError, ssl.SSLError) as e:
            raise UpstreamError(f"cannot connect to {t.host}:{t.port}: {e}") from e
        return conn

    def _take(self, t: Target) -> _Conn | None:
        idle = self._idle.get(t.key)
        now = time.monotonic()
        while idle:
            c = idle.pop()
            if not c.closed and now - c.idle_since < self.idle_max:
                return c
            c.close()  # one a peer or a middlebox may have dropped without a word
        return None

    def _keep(self, t: Target, conn: _Conn) -> None:
        idle = [c for c in self._idle.get(t.key, ()) if not c.closed]
        if conn.closed or len(idle) >= MAX_IDLE:
            conn.close()
        else:
            conn.idle_since = time.monotonic()
            idle.append(conn)
        self._idle[t.key] = idle

    async def _exchange(self, t: Target, request: bytes, head_only: bool) -> tuple[_Conn, Answer]:
        conn = self._take(t)
        if conn is not None:
            try:
                return conn, await conn.exchange(request, head_only)
            except UpstreamError:
                if conn.got_bytes:
                    raise
                # closed by the server as we reused it, before a byte of answer:
                # a stale connection, not a failing backend; once more afresh
            except BaseException:  # cancelled (timed out): the connection is spent
                conn.close()
                raise
        conn = await self._connect(t)
        try:
            return conn, await conn.exchange(request, head_only)
        except BaseException:
            conn.close()
            raise

    async def request(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> Answer:
        t = target(url)
        head = [f"{method} ".encode(), t.path, b" HTTP/1.1\r\nHost: ", t.host_header, b"\r\n"]
        for k, v in (headers or {}).items():
            if "\r" in k + v or "\n" in k + v:
                raise UpstreamError(f"header {k!r} holds a line break")
            head.append(f"{k}: {v}\r\n".encode())
        data = body or b""
        if data or method in ("POST", "PUT"):
            head.append(b"Content-Length: %d\r\n" % len(data))
        head.append(b"\r\n")
        request = b"".join(head) + data
        try:
            async with asyncio.timeout(self.timeout if timeout is None else timeout):
                conn, answer = await self._exchange(t, request, method == "HEAD")
        except TimeoutError as e:
            raise UpstreamError(f"{method} {url}: no answer in time") from e
        self._keep(t, conn)
        return answer
