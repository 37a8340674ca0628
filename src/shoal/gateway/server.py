"""Run one gateway process (uvicorn, one worker, asyncio)."""

from __future__ import annotations

import logging
import sys

from shoal.gateway.config import GatewayConfig


def serve(cfg: GatewayConfig, access_log: bool = True) -> None:
    import uvicorn

    from shoal.gateway.app import Gateway

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    acc = logging.getLogger("shoal.gateway.access")
    acc.addHandler(handler)
    acc.setLevel(logging.INFO if access_log else logging.WARNING)
    acc.propagate = False
    ops = logging.StreamHandler(sys.stderr)  # outages, floods, warnings: one line each
    ops.setFormatter(logging.Formatter("%(asctime)s shoal gateway %(levelname)s: %(message)s"))
    gw = logging.getLogger("shoal.gateway")
    gw.addHandler(ops)
    gw.setLevel(logging.INFO)
    gw.propagate = False
    if cfg.settings.redis:  # unreachable at start: one line and exit 6, not a silent start
        import asyncio

        from shoal.gateway.shared import check

        asyncio.run(check(cfg.settings.redis))
    host, _, port = cfg.settings.listen.rpartition(":")
    app = Gateway(cfg).asgi()
    uvicorn.run(
        app,
        host=host or "127.0.0.1",
        port=int(port),
        access_log=False,
        log_level="warning",
        lifespan="on",
        loop="asyncio",
        http="auto",
        timeout_keep_alive=30,
        backlog=4096,
    )
