"""shoal.gateway: one Jobe REST API in front of many Jobe servers
(language- and load-aware routing, health checks, retries, files made
available on the chosen backend, shared state in Redis when several run)."""

from shoal.core.lazy import exports

__getattr__, __all__ = exports(
    __name__,
    """
    app: Gateway
    config: GatewayConfig load_config
    server: serve
    """,
)
