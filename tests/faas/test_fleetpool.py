"""What the fleet pool does with a controller that answers wrongly: a real
HTTP server on loopback speaking the controller's path with bad bodies."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from shoal.errors import ServiceError
from shoal.faas.fleetpool import FleetPool

MiB = 1 << 20


class Controller:
    def __init__(self) -> None:
        self.status, self.body = 200, b"[]"
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(outer.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(outer.body)))
                self.end_headers()
                self.wfile.write(outer.body)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, body: Any, status: int = 200) -> None:
        self.status, self.body = status, json.dumps(body).encode()


@pytest.fixture
def ctl() -> Iterator[Controller]:
    c = Controller()
    yield c
    c.server.shutdown()


def pool(ctl: Controller, **kw: Any) -> FleetPool:
    def address_of(name: str, known: str | None) -> tuple[str, int] | None:
        from shoal.core.inventory import parse_address

        a = parse_address(known or "", 7000)
        return a.host, a.port

    return FleetPool(ctl.url, verify=False, memory=512 * MiB, address_of=address_of, **kw)


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"nodes": []}, 200, "is not a list of nodes"),
        ([{"state": "running"}], 200, "is not a list of nodes"),
        ({"detail": "boom"}, 500, "answered 500"),
    ],
)
async def test_a_first_list_that_is_wrong_is_a_clear_error(
    ctl: Controller, body: Any, status: int, says: str
) -> None:
    ctl.answer(body, status)
    p = pool(ctl)
    with pytest.raises(ServiceError, match=says):
        await p.refresh(force=True)
    await p.close()


async def test_rows_that_cannot_be_dialled_are_skipped_and_a_bad_list_later_keeps_the_last(
    ctl: Controller,
) -> None:
    ctl.answer(
        [
            {"name": "a", "address": "127.0.0.1:7001", "pool": "fn"},
            {"name": "b", "address": 5, "pool": "fn"},  # not an address
            {"name": "c", "address": "[::1", "pool": "fn"},  # does not parse
            {"name": 7, "address": "127.0.0.1", "pool": "fn"},  # not a name
            {"name": "d", "address": "127.0.0.1:7004", "pool": "batch"},  # another pool
        ]
    )
    p = pool(ctl, pool="fn")
    await p.refresh(force=True)
    assert p.running == {"a"}
    got = await p.reserve()
    assert got is not None and (got.id, got.address, got.node_service_port) == (
        "a",
        "127.0.0.1",
        7001,
    )
    assert await p.reserve() is None  # the only one is held
    ctl.answer({"detail": "down"}, 503)
    await p.refresh(force=True)  # the controller in trouble: the last list stands
    assert p.running == {"a"} and await p.leaving(["a"]) == set()
    ctl.answer([])
    await p.refresh(force=True)
    assert await p.leaving(["a"]) == {"a"}  # gone from the controller's list: drain it
    await p.close()
