"""The ASGI layer in front of the FastAPI app: bounded bodies, strict JSON,
and the heartbeat fast path.

Every request body is read here, up to ``max_body`` bytes: a longer one (by
its Content-Length, before a byte of it is read, or as it streams in) is
answered 413 at once, so a 100 MiB body costs at most ``max_body`` of memory.
A JSON body must be strict JSON (apimodels.check_json), or it is a 422.

The steady-state heartbeat (a known node, sent as itself) is answered here
without FastAPI's routing, validation and middleware: at a fleet's heartbeat
rate those queued every other request behind them
(benchmarks/results/controller.md). Anything else (an unknown node, a bad body, the
wrong certificate) goes to the FastAPI route, which owns the
answers and the OpenAPI description.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI

from shoal.fleet.access import acts_as, sender
from shoal.fleet.apimodels import check_json
from shoal.fleet.registry import Registry

HEARTBEAT = "/v1/heartbeat"
_OK = b'{"ok":true}'


async def _answer(send: Any, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class Front:
    def __init__(self, api: FastAPI, ctl: Registry, insecure: bool) -> None:
        self.api = api
        self.ctl = ctl
        self.insecure = insecure
        self.max_body = ctl.s.max_body

    def __getattr__(self, name: str) -> Any:  # openapi(), routes, state ...
        return getattr(self.api, name)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.api(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        too_big = f"request body over {self.max_body} bytes"
        try:
            declared = int(headers.get(b"content-length", b"0"))
        except ValueError:
            await _answer(send, 400, "invalid Content-Length")
            return
        if declared > self.max_body:
            await _answer(send, 413, too_big)
            return
        if scope["method"] in ("GET", "HEAD", "OPTIONS"):  # no route reads a body
            await self.api(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            msg = await receive()
            if msg["type"] != "http.request":  # client gone
                return
            chunks.append(msg.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_body:
                await _answer(send, 413, too_big)
                return
            if not msg.get("more_body"):
                break
        body = b"".join(chunks)
        if scope["path"] == HEARTBEAT:
            # {"name": "<a known node>"} and nothing else: strict JSON by construction
            name = self._known_sender(scope, headers, body)
            if name is not None:
                self.ctl.heartbeat(name)
                await send(
                    {
                        "type": "http.response.start",
                        "status": 200,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(_OK)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": _OK})
                return
        ctype = headers.get(b"content-type", b"application/json")
        if body and b"json" in ctype:
            why = check_json(body)
            if why is not None:
                await _answer(send, 422, why)
                return
        await self.api(scope, _replay(body, receive), send)

    def _known_sender(self, scope: Any, headers: dict[bytes, bytes], body: bytes) -> str | None:
        try:
            d = json.loads(body)
        except (ValueError, RecursionError):  # check_json says why, next
            return None
        if not isinstance(d, dict) or set(d) != {"name"}:
            return None
        name = d["name"]
        if not isinstance(name, str) or name not in self.ctl.last_hb:
            return None
        claimed = headers.get(b"x-shoal-name")
        who = sender(
            self.insecure,
            scope.get("client"),
            None if claimed is None else claimed.decode("latin-1"),
        )
        return name if acts_as(self.insecure, who, name) else None


def _replay(body: bytes, receive: Any) -> Any:
    sent = False

    async def replay() -> Any:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
