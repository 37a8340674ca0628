"""shoal.gateway: one Jobe REST API in front of many Jobe servers
(language- and load-aware routing, health checks, retries, files made
available on the chosen backend, shared state in Redis when several run)."""

from shoal.core.lazy import exports

_EXPORTS = {
    "Gateway": "app",
    "GatewayConfig": "config",
    "load_config": "config",
    "serve": "server",
}
__getattr__ = exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
