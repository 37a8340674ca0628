"""The reference practice the controller benchmark compares with: a host
manager that writes each heartbeat to the database as it arrives (one UPDATE
per heartbeat), on the same schema, driver and HTTP server as shoal's.

    python benchmarks/naive_controller.py --db URL --listen 127.0.0.1:PORT
"""

from __future__ import annotations

import argparse
from typing import Any

import uvicorn
from sqlalchemy import update
from sqlalchemy.ext.asyncio import async_sessionmaker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from shoal.core.inventory import parse_listen
from shoal.fleet.db import Node, make_engine, utcnow


def app(db: str) -> Starlette:
    engine = make_engine(db)
    session = async_sessionmaker(engine, expire_on_commit=False)

    async def heartbeat(request: Request) -> JSONResponse:
        name = (await request.json())["name"]
        async with session() as sess, sess.begin():
            q = update(Node).where(Node.name == name).values(last_heartbeat=utcnow())
            found = (await sess.execute(q)).rowcount  # type: ignore[attr-defined]
        if not found:
            return JSONResponse({"detail": f"node {name} is not registered"}, 404)
        return JSONResponse({"ok": True})

    async def healthz(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    routes: list[Any] = [
        Route("/v1/heartbeat", heartbeat, methods=["POST"]),
        Route("/healthz", healthz),
    ]
    return Starlette(routes=routes)  # the process ends with the run: no teardown


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", required=True)
    ap.add_argument("--listen", required=True)
    a = ap.parse_args()
    listen = parse_listen(a.listen)
    uvicorn.run(
        app(a.db),
        host=listen.host,
        port=listen.port,
        http="httptools",
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
