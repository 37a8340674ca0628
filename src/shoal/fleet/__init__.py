"""shoal.fleet: the fleet controller. A node registry with buffered
heartbeats, the lifecycle watchdog and its breaker, host replacement through
a provider, cron jobs run through the fan-out API, Prometheus metrics and
Statuspage; ``serve`` runs it behind its HTTPS API."""

from shoal.core.lazy import exports

_EXPORTS = {
    "Controller": "controller",
    "ControllerSettings": "settings",
    "build_app": "api",
    "serve": "server",
}
__getattr__ = exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
