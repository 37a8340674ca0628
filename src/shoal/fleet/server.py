"""Run the controller: uvicorn over mutual TLS with the cluster CA."""

from __future__ import annotations

import contextlib
import logging
import ssl
from typing import Any

from shoal.core.inventory import listening_socket, parse_listen
from shoal.errors import ConfigError, ServiceError
from shoal.fleet.dbhealth import brief
from shoal.fleet.settings import ControllerSettings

log = logging.getLogger("shoal.fleet")


def _protocol_class() -> type:
    # httptools (C parser): h11's pure-Python parsing is costly per heartbeat
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from shoal.fleet.access import PEERS, peer_of_cert

    class PeerProtocol(HttpToolsProtocol):
        """Records the verified client certificate (CN and role) of this connection."""

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            sslobj = transport.get_extra_info("ssl_object")
            peer = transport.get_extra_info("peername")
            if sslobj is not None and peer:
                who = peer_of_cert(sslobj.getpeercert() or {})
                if who is not None:
                    PEERS[(peer[0], peer[1])] = who
                self._shoal_peer = (peer[0], peer[1])

        def connection_lost(self, exc: Exception | None) -> None:
            p = getattr(self, "_shoal_peer", None)
            if p is not None:
                PEERS.pop(p, None)
            super().connection_lost(exc)

    return PeerProtocol


def make_provider(s: ControllerSettings, url: str) -> Any:
    from shoal.fleet.cleanenv import program_env

    if s.provider == "local":
        from shoal.core.config import shoal_home
        from shoal.fleet.providers import LocalProvider, default_local_argv

        return LocalProvider(
            shoal_home() / "local-provider",
            default_local_argv(url, s.tls_path()),
            s.tls_path(),
            grace=s.stop_grace,
        )
    if s.provider == "command":
        from shoal.fleet.providers import CommandProvider

        if not s.provider_command:
            raise ConfigError("provider=command needs provider_command")
        return CommandProvider(s.provider_command, env=program_env(s.provider_env))
    if s.provider == "libcloud":
        from shoal.fleet.providers import LibcloudProvider

        if s.libcloud_config is None:
            raise ConfigError("provider=libcloud needs libcloud_config (a TOML file)")
        return LibcloudProvider(s.libcloud_config, env=program_env(s.provider_env))
    return None


def _tls(s: ControllerSettings) -> dict[str, Any]:
    if s.insecure:  # `shoal controller --insecure` says so, loudly
        return {}
    d = s.tls_path()
    paths = [d / "ca.crt", d / f"{s.cert_name}.crt", d / f"{s.cert_name}.key"]
    for p in paths:
        if not p.exists():
            raise ConfigError(
                f"{p} not found: run `shoal ca issue {s.cert_name} --san HOST` or pass --insecure"
            )
    return {
        "ssl_ca_certs": str(paths[0]),
        "ssl_certfile": str(paths[1]),
        "ssl_keyfile": str(paths[2]),
        "ssl_cert_reqs": ssl.CERT_REQUIRED,
    }


async def serve(s: ControllerSettings) -> None:
    import uvicorn

    from shoal.fleet.api import build_app
    from shoal.fleet.controller import Controller

    listen = parse_listen(s.listen, ConfigError)
    host, port = listen.host, listen.port
    kw = _tls(s)
    sock = listening_socket(host, port)
    try:
        scheme = "http" if s.insecure else "https"
        ctl = Controller(s, provider=make_provider(s, f"{scheme}://{host}:{port}"))
        try:
            await ctl.start()
        except Exception as e:
            with contextlib.suppress(Exception):
                await ctl.engine.dispose()
            raise ServiceError(f"cannot open the database: {brief(e)}") from e
        config = uvicorn.Config(
            build_app(ctl, insecure=s.insecure),
            host=host,
            port=port,
            http=_protocol_class(),
            lifespan="off",
            log_level="warning",
            access_log=False,
            **kw,
        )
        server = uvicorn.Server(config)
        try:
            await server.serve(sockets=[sock])
        finally:
            await ctl.stop()
    finally:
        sock.close()
