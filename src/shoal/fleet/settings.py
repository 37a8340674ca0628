"""Controller settings: [controller] in config.toml, SHOAL_CONTROLLER_* in the environment."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic_settings import SettingsConfigDict

from shoal.core.config import shoal_home
from shoal.core.sections import Section


class ControllerSettings(Section):
    section: ClassVar[str] = "controller"
    # SHOAL_CONTROLLER_URL is the client's (core Settings.controller_url)
    elsewhere: ClassVar[frozenset[str]] = frozenset({"url"})
    model_config = SettingsConfigDict(env_prefix="SHOAL_CONTROLLER_", extra="ignore")

    db: str = ""  # default: sqlite:///$SHOAL_HOME/fleet.db
    listen: str = "127.0.0.1:8443"
    insecure: bool = False
    tls_dir: Path | None = None  # default: $SHOAL_HOME/tls (uses controller.crt/.key)
    cert_name: str = "controller"
    # lifecycle
    boot_timeout: float = 20 * 60.0  # provisioning -> act after this many seconds
    suspect_after: float = 30.0  # running silent this long -> suspect
    down_after: float = 90.0  # silent this long -> down (or replace)
    check_interval: float = 10.0  # watchdog period
    policy: Literal["mark-down", "replace"] = "mark-down"
    # replacement bounds
    provider: Literal["none", "local", "command", "libcloud"] = "none"
    provider_command: str = ""  # for provider=command
    libcloud_config: Path | None = None  # for provider=libcloud: driver, credentials, node
    # controller environment variables a provider program needs (it gets nothing else
    # of the controller's environment); in SHOAL_CONTROLLER_PROVIDER_ENV as JSON
    provider_env: list[str] = []
    stop_grace: float = 5.0  # provider=local: SIGTERM, then SIGKILL after this many seconds
    max_concurrent: int = 2  # K
    max_pool_percent: float = 20.0  # P % of the pool per window
    window: float = 3600.0
    backoff: float = 60.0  # per host, doubled per consecutive failure
    breaker_fraction: float = 0.3  # this share of the fleet silent together -> hold
    breaker_min_nodes: int = 4
    executor: str = ""  # program prefix for jobs, default "python -m shoal.fleet.jobproc"
    max_body: int = 1024 * 1024  # bytes: a longer request body is refused (413)
    db_timeout: float = 5.0  # a database call that takes longer is an outage (503)
    # heartbeats
    flush_interval: float = 1.0
    # statuspage
    statuspage_url: str = "https://api.statuspage.io"
    statuspage_page_id: str = ""
    statuspage_api_key_file: Path | None = None  # or SHOAL_CONTROLLER_STATUSPAGE_API_KEY
    statuspage_api_key: str = ""
    statuspage_metrics: str = ""  # running=<metric id>,down=<id>,... (Registry.snapshot keys)

    def db_url(self) -> str:
        return self.db or f"sqlite:///{shoal_home() / 'fleet.db'}"

    def tls_path(self) -> Path:
        return self.tls_dir or shoal_home() / "tls"
