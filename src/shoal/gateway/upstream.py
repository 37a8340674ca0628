"""HTTP/1.1 to the Jobe backends: keep-alive connections per backend, written
on asyncio and httptools (the C parser uvicorn uses).

Proxying is the gateway's whole CPU budget: aiohttp's general client cost
~0.17 ms of the event loop per run, this one ~0.09 ms (request head built
once per URL, one write, one parse), which is a third of the gateway's CPU
per proxied run. Every transport failure (refused, reset, timed out, a
truncated answer) is one exception, UpstreamError, which the caller turns
into a retry elsewhere. A connection is reused only after a complete answer
the server allows to keep alive; anything else closes it.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

import httptools

# s an idle connection is kept: a server's close we see, a NAT's silent drop we would not
IDLE_MAX = 15.0
MAX_ANSWER = 64 * 1024 * 1024  # bytes: a backend gone mad cannot fill the gateway's memory


class UpstreamError(Exception):
    pass


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
    u = urlsplit(url)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise UpstreamError(f"not an http(s) URL: {url!r}")
    tls = u.scheme == "https"
    port = u.port or (443 if tls else 80)
    path = (u.path or "/") + (f"?{u.query}" if u.query else "")
    return Target(
        (u.scheme, u.hostname, port), u.hostname, port, tls, path.encode(), u.netloc.encode()
    )


class _Conn(asyncio.Protocol):
    """One connection; one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[Answer] | None = None
        self._body: list[bytes] = []
        self._size = 0
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
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as e:
            self._fail(UpstreamError(f"bad HTTP answer: {e}"))

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

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() in (b"content-length", b"transfer-encoding"):
            self._framed = True

    def on_headers_complete(self) -> None:
        self._headers_done = True
        if self._head_only:  # no body follows an answer to HEAD, whatever Content-Length says
            self._complete(keep=False)

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > MAX_ANSWER:
            self._fail(UpstreamError(f"answer larger than {MAX_ANSWER} bytes"))
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
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
        self._headers_done = self._framed = False
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
        conn: _Conn | None = None
        try:
            async with asyncio.timeout(self.timeout if timeout is None else timeout):
                conn = self._take(t) or await self._connect(t)
                answer = await conn.exchange(request, head_only=method == "HEAD")
        except TimeoutError as e:
            if conn is not None:
                conn.close()
            raise UpstreamError(f"{method} {url}: no answer in time") from e
        except BaseException:  # cancelled or failed mid-exchange: the connection is spent
            if conn is not None:
                conn.close()
            raise
        if not conn.closed:
            conn.idle_since = time.monotonic()
            self._idle.setdefault(t.key, []).append(conn)
        return answer
