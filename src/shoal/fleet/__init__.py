"""shoal.fleet: the fleet controller. A node registry with buffered
heartbeats, the lifecycle watchdog and its breaker, host replacement through
a provider, cron jobs run through the fan-out API, Prometheus metrics and
Statuspage; ``serve`` runs it behind its HTTPS API."""

from shoal.core.lazy import exports

__getattr__, __all__ = exports(
    __name__,
    """
    api: build_app
    controller: Controller
    server: serve
    settings: ControllerSettings
    """,
)
