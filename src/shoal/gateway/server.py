"""Run one gateway process (uvicorn, one worker, asyncio)."""

from __future__ import annotations

import logging
import sys

from shoal.core.inventory import listening_socket, parse_listen
from shoal.errors import ConfigError
from shoal.gateway.config import GatewayConfig


def serve(cfg: GatewayConfig, access_log: bool = True) -> None:
    import uvicorn

    from shoal.gateway.app import Gateway
    from shoal.gateway.conns import raise_nofile

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    acc = logging.getLogger("shoal.gateway.access")
    acc.addHandler(handler)
    acc.setLevel(logging.INFO if access_log else logging.WARNING)
    acc.propagate = False
    ops = logging.StreamHandler(sys.stderr)  # outages, floods, warnings: one line each
    ops.setFormatter(logging.Formatter("%(asctime)s shoal gateway %(levelname)s: %(message)s"))
    ops_log = logging.getLogger("shoal.gateway")
    ops_log.addHandler(ops)
    ops_log.setLevel(logging.INFO)
    ops_log.propagate = False
    if cfg.settings.redis:  # unreachable at start: one line and exit 6, not a silent start
        import asyncio

        from shoal.gateway.shared import check

        asyncio.run(check(cfg.settings.redis))
    listen = parse_listen(cfg.settings.listen, ConfigError)
    sock = listening_socket(listen.host or "127.0.0.1", listen.port)  # before anything is made
    raise_nofile()  # then max_connections, by default, is what it allows
    gw = Gateway(cfg)
    app = gw.asgi()
    config = uvicorn.Config(
        app,
        host=listen.host or "127.0.0.1",
        port=listen.port,
        access_log=False,
        log_level="warning",
        lifespan="on",
        loop="asyncio",
        http=gw.conns.protocol(),  # httptools, under the connection guard
        timeout_keep_alive=30,
        backlog=gw.backlog,  # an accept burst: descriptors counted in max_connections
    )
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
