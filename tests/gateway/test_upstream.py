"""The gateway's HTTP client against real sockets that answer the way servers
do in the wild: keep-alive, close, chunked, truncated, silent, HEAD."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from shoal.errors import UpstreamError
from shoal.gateway import upstream
from shoal.gateway.upstream import Upstream

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_request(r: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One request: (request line, body)."""
    head = await r.readuntil(b"\r\n\r\n")
    n = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            n = int(line.split(b":")[1])
    return head.split(b"\r\n")[0], await r.readexactly(n)


class Server:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[tuple[bytes, bytes]] = []

    async def _serve(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(r, w)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            w.close()

    async def start(self) -> str:
        self.srv = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.srv.sockets[0].getsockname()[1]}"


@pytest.fixture
async def client() -> AsyncIterator[Upstream]:
    c = Upstream(timeout=5)
    yield c
    await c.close()


async def serve(handler: Handler) -> tuple[Server, str]:
    s = Server(handler)
    return s, await s.start()


def keepalive(answers: list[bytes], srv_ref: list[Server]) -> Handler:
    async def h(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        while True:
            srv_ref[0].requests.append(await read_request(r))
            w.write(answers[min(len(srv_ref[0].requests), len(answers)) - 1])
            await w.drain()

    return h


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}"


async def test_keeps_one_connection_for_requests_in_a_row(client: Upstream) -> None:
    ref: list[Server] = []
    srv, url = await serve(keepalive([OK], ref))
    ref.append(srv)
    for i in range(5):
        a = await client.request("POST", url + "/runs", body=b'{"n":%d}' % i)
        assert (a.status, a.body) == (200, b"{}")
    assert srv.connections == 1
    assert [b for _, b in srv.requests] == [b'{"n":%d}' % i for i in range(5)]
    assert srv.requests[0][0] == b"POST /runs HTTP/1.1"


async def test_connection_close_answer_is_not_reused(client: Upstream) -> None:
    closing = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx"

    async def h(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await read_request(r)
        w.write(closing)
        await w.drain()
        await r.read()  # the client must be the one to go

    srv, url = await serve(h)
    assert (await client.request("GET", url + "/languages")).body == b"x"
    assert (await client.request("GET", url + "/languages")).body == b"x"
    assert srv.connections == 2


async def test_answer_ended_by_close_and_chunked_answer(client: Upstream) -> None:
    async def by_close(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it")
        await w.drain()

    async def chunked(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        w.write(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
        await w.drain()
        await r.read()

    _, u1 = await serve(by_close)
    _, u2 = await serve(chunked)
    assert (await client.request("GET", u1 + "/x")).body == b"all of it"
    assert (await client.request("GET", u2 + "/x")).body == b"abcde"


async def test_truncated_answer_is_an_error(client: Upstream) -> None:
    async def h(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await read_request(r)
        w.write(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"outcome"')
        await w.drain()

    _, url = await serve(h)
    with pytest.raises(UpstreamError, match="closed before the answer"):
        await client.request("POST", url + "/runs", body=b"{}")


async def test_silent_server_times_out_and_its_connection_is_dropped() -> None:
    async def h(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await read_request(r)
        await r.read()  # never answers

    srv, url = await serve(h)
    c = Upstream(timeout=0.3)
    try:
        with pytest.raises(UpstreamError, match="no answer in time"):
            await c.request("POST", url + "/runs", body=b"{}")
        with pytest.raises(UpstreamError):
            await c.request("POST", url + "/runs", body=b"{}")
        assert srv.connections == 2  # the timed-out connection was never reused
    finally:
        await c.close()


async def test_head_answer_with_a_length_but_no_body(client: Upstream) -> None:
    async def h(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await read_request(r)
        w.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 31\r\n\r\n")  # HEAD: no body
        await w.drain()
        await r.read()

    _, url = await serve(h)
    a = await client.request("HEAD", url + "/files/abc")
    assert (a.status, a.body) == (404, b"")


async def test_idle_connection_closed_by_the_server_is_not_used(client: Upstream) -> None:
    async def h(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await read_request(r)
        w.write(OK)
        await w.drain()  # then closes: a keep-alive time-out on the server's side

    srv, url = await serve(h)
    assert (await client.request("GET", url + "/languages")).status == 200
    await asyncio.sleep(0.1)  # the close reaches us while the connection is idle
    assert (await client.request("GET", url + "/languages")).status == 200
    assert srv.connections == 2


async def test_refused_and_garbage_answers_are_errors(client: Upstream) -> None:
    srv = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    srv.close()
    await srv.wait_closed()
    with pytest.raises(UpstreamError, match="cannot connect"):
        await client.request("GET", f"http://127.0.0.1:{port}/languages")

    async def garbage(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await read_request(r)
        w.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        await w.drain()
        await r.read()

    _, url = await serve(garbage)
    with pytest.raises(UpstreamError, match="bad HTTP answer"):
        await client.request("GET", url + "/languages")


async def test_header_with_a_line_break_is_refused(client: Upstream) -> None:
    with pytest.raises(UpstreamError, match="line break"):
        await client.request("GET", "http://127.0.0.1:9/x", headers={"X-API-KEY": "k\r\nX-Evil: 1"})


async def test_connection_idle_too_long_is_not_reused() -> None:
    """A NAT may drop an idle connection without a word: one idle past idle_max is
    closed and a fresh one opened, instead of waiting out the run time-out on it."""
    ref: list[Server] = []
    srv, url = await serve(keepalive([OK], ref))
    ref.append(srv)
    c = Upstream(timeout=5, idle_max=0.2)
    try:
        await c.request("GET", url + "/languages")
        await c.request("GET", url + "/languages")
        assert srv.connections == 1
        await asyncio.sleep(0.3)
        await c.request("GET", url + "/languages")
        assert srv.connections == 2
    finally:
        await c.close()


async def test_answer_over_the_cap_is_an_error_not_memory(
    client: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(upstream, "MAX_ANSWER", 1000)

    async def h(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + b"x" * 5000)
        await w.drain()
        await r.read()

    _, url = await serve(h)
    with pytest.raises(UpstreamError, match="larger than 1000 bytes"):
        await client.request("POST", url + "/runs", body=b"{}")


async def test_interim_1xx_answers_are_skipped_and_answers_stay_in_step(client: Upstream) -> None:
    """103 Early Hints before the real answer: each request still gets its own."""

    async def h(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        while True:
            _, body = await read_request(r)
            w.write(b"HTTP/1.1 103 Early Hints\r\nLink: </x.css>; rel=preload\r\n\r\n")
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            await w.drain()

    srv, url = await serve(h)
    for i in range(3):
        a = await client.request("POST", url + "/runs", body=b"req%d" % i)
        assert (a.status, a.body) == (200, b"req%d" % i)
    assert srv.connections == 1


async def test_bytes_after_an_answer_never_reach_the_next_one(client: Upstream) -> None:
    async def h(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await read_request(r)
        w.write(OK + b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstale")  # out of turn
        await w.drain()
        while True:
            await read_request(r)
            w.write(OK)
            await w.drain()

    srv, url = await serve(h)
    assert (await client.request("GET", url + "/a")).body == b"{}"
    assert (await client.request("GET", url + "/b")).body == b"{}"
    assert srv.connections == 2  # the connection that spoke out of turn was dropped


async def test_server_closing_a_reused_connection_is_not_an_error(client: Upstream) -> None:
    """The server's keep-alive time-out fires as we reuse the connection: no byte of
    answer came, so the request goes once more on a fresh connection."""
    writers: list[asyncio.StreamWriter] = []

    async def h(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        writers.append(w)
        while True:
            await read_request(r)
            w.write(OK)
            await w.drain()

    srv, url = await serve(h)
    await client.request("GET", url + "/languages")
    writers[0].close()  # and at once, before our loop has seen it:
    a = await client.request("POST", url + "/runs", body=b"{}")
    assert a.status == 200 and srv.connections == 2


async def test_endless_headers_and_upgrades_are_errors(client: Upstream) -> None:
    async def endless(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\nX-Junk: ")
        for _ in range(200):
            w.write(b"x" * 4096)
            await w.drain()
        await r.read()

    async def upgrade(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await read_request(r)
        w.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n")
        w.write(b"Connection: Upgrade\r\n\r\n")
        await w.drain()
        await r.read()

    _, u1 = await serve(endless)
    _, u2 = await serve(upgrade)
    with pytest.raises(UpstreamError, match="headers larger than"):
        await client.request("GET", u1 + "/x")
    with pytest.raises(UpstreamError, match="HttpParserUpgrade"):
        await client.request("GET", u2 + "/x")


async def test_request_head_and_urls(client: Upstream) -> None:
    """Host never carries a URL's user:password; a bad URL is an UpstreamError;
    a non-chunked Transfer-Encoding answer ends at the close."""

    async def h(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        head = await r.readuntil(b"\r\n\r\n")
        w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\n" + head)
        await w.drain()

    _, url = await serve(h)
    port = url.rsplit(":", 1)[1]
    a = await client.request("GET", f"http://jobe:s3cret@127.0.0.1:{port}/x?y=1")
    assert a.body == f"GET /x?y=1 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    for bad in ("http://h:99999/", "http://[::1/", "ftp://h/"):
        with pytest.raises(UpstreamError):
            await client.request("GET", bad)
