"""The access log and the last line of defence: one JSON line per request, and
a Jobe-style JSON 500 (not uvicorn's plain text) for an error nothing caught."""

from __future__ import annotations

import json
import logging
import time

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shoal.gateway.jobe import JSON_TYPE, encode
from shoal.gateway.metrics import Metrics

API = "/jobe/index.php/restapi/"
ROUTES = {"languages", "runs", "files"}
log = logging.getLogger("shoal.gateway.access")
errors = logging.getLogger("shoal.gateway")


class AccessLog:
    """One JSON line per request on the shoal.gateway.access logger."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500
        started = False
        scope.setdefault("state", {})
        path: str = scope["path"]

        async def send_wrapped(msg: Message) -> None:
            nonlocal status, started
            if msg["type"] == "http.response.start":
                status, started = msg["status"], True
            await send(msg)

        try:
            await self.app(scope, receive, send_wrapped)
        except Exception as e:  # a bug of the gateway's, not the client's mistake
            errors.exception("unexpected error on %s %s", scope["method"], path[:200])
            if started:
                raise  # half an answer sent: uvicorn closes the connection
            status = 500
            body = encode(f"Server exception ({type(e).__name__})")
            answer = Response(body, status_code=500, media_type=JSON_TYPE)
            await answer(scope, receive, send)
        finally:
            route = label(path)
            self.metrics.child(self.metrics.requests, scope["method"], route, str(status)).inc()
            if log.isEnabledFor(logging.INFO):
                st = scope["state"]
                rec = {
                    "ts": round(time.time(), 3),
                    "method": scope["method"],
                    "path": path[:200],  # a 5,000-character file id is not logged whole
                    "status": status,
                    "ms": round((time.perf_counter() - t0) * 1000, 2),
                    "backend": st.get("backend"),
                    "outcome": st.get("outcome"),
                    "client": (scope.get("client") or ["?"])[0],
                }
                log.info(json.dumps(rec))


def label(path: str) -> str:
    """The metrics label of a path: one of a few, never the path itself (a
    label per path a client made up would grow without bound)."""
    if path.startswith(API):
        first = path[len(API) :].split("/", 1)[0]
        return first if first in ROUTES else "other"
    return path if path in ("/metrics", "/shoal/status") else "other"
