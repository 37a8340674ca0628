"""Client connections: bounded in number and in what a request head may take.

A connection that sends nothing costs the gateway a descriptor and a little
memory for as long as it is held; unbounded, some thousands of them ran it out
of descriptors, after which every accept failed with a traceback. So:

- at most ``max_connections_per_source`` connections from one address, and at
  most ``max_connections`` in all (by default what the open-file limit leaves
  once the backends' connections and one accept burst are counted, so the
  gateway never runs out of descriptors); beyond, a connection gets a short
  503 and is closed at once;
- a request head (from the connection's start, or from a request's first
  byte on a kept-alive one) must be complete within ``head_timeout`` seconds
  and ``MAX_HEAD`` bytes, or the connection is closed (431 for the size);
- after a flood (1,000 connections or more at once) ends, the memory it took
  is handed back to the system (``malloc_trim``);
- refusals and time-outs are counted (``/metrics``, ``/shoal/status``) and
  logged at most once a minute each, never once per connection; the loop's
  "accept out of system resource" errors likewise.

The gateway serves plain HTTP (TLS ends at the balancer in front of it), so
there is no handshake of its own to bound.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from shoal.gateway.metrics import Metrics

TRIM_AFTER = 1000  # connections open at once: after such a flood, memory is given back
MAX_HEAD = 64 * 1024  # bytes of request line and headers (Apache: 8 KiB a line, 100 lines)
log = logging.getLogger("shoal.gateway")


def plan(reserve: int) -> tuple[int, int]:
    """(listen backlog, max_connections) for the open-file limit, keeping
    ``reserve`` descriptors for the backends, Redis, files and the process.

    asyncio accepts up to ``backlog`` connections in one go before any is
    admitted or refused, so a burst takes that many descriptors at once: the
    backlog is a quarter of the limit at most (1024 at most), and what the
    admitted connections may hold is what is left."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1024, 1 << 20
    backlog = min(1024, max(16, soft // 4))
    return backlog, max(16, soft - backlog - reserve)


def trim_memory() -> None:
    """Collect, then hand freed heap pages back to the system (glibc's
    malloc_trim): without it a flood's peak stays in the RSS for good."""
    import ctypes
    import ctypes.util
    import gc

    gc.collect()
    name = ctypes.util.find_library("c")
    try:
        ctypes.CDLL(name).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def raise_nofile(cap: int = 65536) -> None:
    """Soft open-file limit up to the hard one (at most ``cap``), as Go does."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = cap if hard == resource.RLIM_INFINITY else min(hard, cap)
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


class Flood:
    """Log one kind of event at once, then at most one line per ``window``
    with what happened since: a flood is a line a minute, whatever its size."""

    def __init__(self, what: str, window: float = 60.0) -> None:
        self.what = what
        self.window = window
        self.next_line = 0.0
        self.since = 0
        self.sources: dict[str, int] = {}

    def note(self, source: str, detail: str) -> None:
        self.since += 1
        if len(self.sources) < 1000 or source in self.sources:
            self.sources[source] = self.sources.get(source, 0) + 1
        now = time.monotonic()
        if now < self.next_line:
            return
        top = max(self.sources, key=lambda k: self.sources[k])
        many = f"{self.since} {self.what} from {len(self.sources)} addresses (most from {top})"
        log.warning(
            "%s: %s (at most one such line a minute)",
            many if self.since > 1 else f"{self.what} from {source}",
            detail,
        )
        self.next_line = now + self.window
        self.since, self.sources = 0, {}


class ConnGuard:
    def __init__(self, per_source: int, total: int, head_timeout: float, metrics: Metrics) -> None:
        self.per_source = per_source
        self.total = total
        self.head_timeout = head_timeout
        self.metrics = metrics
        self.open = 0
        self.peak = 0  # most open since memory was last given back
        self.by_source: dict[str, int] = {}
        self.refused = 0
        self.head_timeouts = 0
        self.invalid = 0
        self._refusals = Flood("connections refused")
        self._timeouts = Flood("connections closed without a complete request head")
        self._accept = Flood("accept errors")
        self._invalid = Flood("requests that are not HTTP")
        logging.getLogger("uvicorn.error").addFilter(_drop_invalid)  # counted here instead

    def admit(self, host: str) -> str | None:
        """None when the connection may stay; else why it is refused."""
        if self.total and self.open >= self.total:
            why = f"{self.total} connections open (max_connections)"
        elif self.per_source and self.by_source.get(host, 0) >= self.per_source:
            why = f"{self.per_source} open from one address (max_connections_per_source)"
        else:
            self.open += 1
            self.peak = max(self.peak, self.open)
            self.by_source[host] = self.by_source.get(host, 0) + 1
            self.metrics.connections.set(self.open)
            return None
        self.refused += 1
        self.metrics.conn_refused.inc()
        self._refusals.note(host, f"over {why}: answered 503 and closed")
        return why

    def release(self, host: str) -> None:
        self.open -= 1
        if self.peak >= TRIM_AFTER and self.open <= self.peak // 4:
            self.peak = self.open  # a flood is over: give its memory back, once
            asyncio.get_running_loop().call_later(1.0, trim_memory)
        n = self.by_source.get(host, 0) - 1
        if n > 0:
            self.by_source[host] = n
        else:
            self.by_source.pop(host, None)
        self.metrics.connections.set(self.open)

    def timed_out(self, host: str, what: str) -> None:
        self.head_timeouts += 1
        self.metrics.head_timeouts.inc()
        self._timeouts.note(host, what)

    def status(self) -> dict[str, int]:
        return {
            "open": self.open,
            "max": self.total,
            "max_per_source": self.per_source,
            "refused": self.refused,
            "head_timeouts": self.head_timeouts,
            "invalid": self.invalid,
        }

    def loop_errors(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """The loop's exception handler: out of descriptors at accept is one
        line a minute, not a traceback per attempt; the rest as asyncio does."""
        exc = context.get("exception")
        if isinstance(exc, OSError) and "accept" in str(context.get("message", "")):
            self._accept.note("-", f"{exc.strerror or exc} (the open-file limit is too low)")
            return
        loop.default_exception_handler(context)

    def protocol(self) -> type[asyncio.Protocol]:
        """uvicorn's httptools protocol under this guard."""
        guard = self

        class Guarded(HttpToolsProtocol):
            _g_in = False
            _g_timer: asyncio.TimerHandle | None = None
            _g_head = 0
            _g_host = "?"

            def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
                peer = transport.get_extra_info("peername")
                self._g_host = str(peer[0]) if peer else "?"
                why = guard.admit(self._g_host)
                if why is not None:
                    _answer(transport, 503, "Too many connections: " + why)
                    return
                self._g_in = True
                super().connection_made(transport)
                self._g_arm()

            def connection_lost(self, exc: Exception | None) -> None:
                if not self._g_in:
                    return
                self._g_in = False
                self._g_disarm()
                guard.release(self._g_host)
                super().connection_lost(exc)

            def data_received(self, data: bytes) -> None:
                if not self._g_in:
                    return
                inside = self._g_timer is not None  # in a request head
                super().data_received(data)
                if inside and self._g_timer is not None:  # and still in it (a body
                    self._g_head += len(data)  # read with its head is not counted)
                    if self._g_head > MAX_HEAD and not self.transport.is_closing():
                        self._g_disarm()
                        guard.timed_out(self._g_host, f"head over {MAX_HEAD} bytes: 431")
                        _answer(self.transport, 431, "Request header fields too large")

            def send_400_response(self, msg: str) -> None:
                guard.invalid += 1
                guard._invalid.note(self._g_host, "answered 400 and closed")
                super().send_400_response(msg)

            def on_message_begin(self) -> None:
                super().on_message_begin()
                if self._g_timer is None:  # a kept-alive connection's next request
                    self._g_arm()

            def on_headers_complete(self) -> None:
                self._g_disarm()
                super().on_headers_complete()

            def _g_arm(self) -> None:
                self._g_head = 0
                self._g_timer = self.loop.call_later(guard.head_timeout, self._g_expired)

            def _g_disarm(self) -> None:
                if self._g_timer is not None:
                    self._g_timer.cancel()
                    self._g_timer = None

            def _g_expired(self) -> None:
                self._g_timer = None
                if self.transport.is_closing():
                    return
                guard.timed_out(self._g_host, f"no request head within {guard.head_timeout:g} s")
                self.transport.close()

        return Guarded


def _drop_invalid(record: logging.LogRecord) -> bool:
    """uvicorn logs every unparsable request; the guard counts them instead."""
    return record.getMessage() != "Invalid HTTP request received."


def _answer(transport: asyncio.Transport, status: int, message: str) -> None:
    """A short JSON-string answer (as Jobe's errors), then close."""
    reason = {431: "Request Header Fields Too Large", 503: "Service Unavailable"}[status]
    body = ('"' + message.replace('"', "'") + '"').encode()
    transport.write(
        b"HTTP/1.1 %d %s\r\ncontent-type: application/json; charset=UTF-8\r\ncontent-length: %d\r\n"
        b"connection: close\r\n\r\n%s" % (status, reason.encode(), len(body), body)
    )
    transport.close()
