"""Gateway settings and the backend list, read from one TOML file.

``[gateway]`` holds the settings (flags > SHOAL_GATEWAY_* > file > defaults),
``[[backend]]`` the Jobe servers and ``[[key]]`` the optional API keys.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import SettingsConfigDict

from shoal.core.config import read_toml, shoal_home
from shoal.core.inventory import parse_listen
from shoal.core.sections import Section
from shoal.errors import ConfigError

Balance = Literal["p2c", "random", "round-robin"]


class GatewaySettings(Section):
    section: ClassVar[str] = "gateway"
    model_config = SettingsConfigDict(env_prefix="SHOAL_GATEWAY_", extra="ignore")

    listen: str = "127.0.0.1:8080"
    balance: Balance = "p2c"
    redis: str | None = None
    redis_prefix: str = "shoal-gw:"
    # for /metrics and /shoal/status (X-API-KEY or Authorization: Bearer); needed
    # there as soon as any [[key]] is configured
    operator_key: str | None = Field(default=None, min_length=1)
    files_dir: Path = shoal_home() / "gateway-files"
    queue_timeout: float = 10.0  # seconds a run may wait for a slot; then outcome 21
    max_queue: int = 1000  # runs waiting at most; beyond, outcome 21 at once
    retries: int = 2  # further attempts on other backends
    health_interval: float = 2.0  # seconds between GET languages per backend
    health_timeout: float = 2.0
    eject_after: int = 3  # consecutive failures (active or passive) that eject
    eject_for: float = 10.0  # seconds an ejected backend waits before a re-check
    min_live: int = 1  # floor: never eject below this many live backends
    run_timeout: float = 120.0  # seconds for one backend POST runs
    head_timeout: float = Field(default=10.0, gt=0)  # s to send a request head
    max_connections_per_source: int = Field(default=512, ge=0)  # 0: no limit
    max_connections: int = Field(default=0, ge=0)  # 0: what the open-file limit allows
    max_run_body: int = Field(default=8 * 1024 * 1024, ge=1024)  # bytes; PHP's post_max_size
    max_file_body: int = Field(default=16 * 1024 * 1024, ge=1024)  # bytes of a PUT files body


class BackendConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt key is an error, not a default

    url: str
    weight: float = Field(default=1.0, gt=0)
    api_key: str | None = None
    capacity: int = Field(default=16, ge=1)
    # the backend's cputime_upper_limit_secs (Jobe's default): longer runs go elsewhere
    cputime_limit: int = Field(default=120, ge=1)

    @property
    def base(self) -> str:
        u = self.url.rstrip("/")
        return u if u.endswith("/restapi") else u + "/jobe/index.php/restapi"


class KeyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(min_length=1)
    runs_per_hour: int = Field(default=0, ge=0)  # 0: unlimited


class GatewayConfig(BaseModel):
    settings: GatewaySettings
    backends: list[BackendConfig]
    keys: list[KeyConfig]


def _items(data: dict[str, Any], name: str, model: type[BaseModel], path: Path) -> list[Any]:
    raw = data.get(name, [])
    if not isinstance(raw, list):
        raise ConfigError(f"{path}: [[{name}]] must be an array of tables")
    out = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise ConfigError(f"{path}: {name} #{i + 1} must be a table")
        try:
            out.append(model(**item))
        except ValidationError as e:
            err = e.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise ConfigError(f"{path}: {name} #{i + 1}: {where}: {err['msg']}") from e
    return out


def load_config(path: Path | None, **flags: Any) -> GatewayConfig:
    """Read backends and keys from ``path``; settings from flags, env, ``path``."""
    if path is not None:
        data = read_toml(path, "gateway configuration file")
    else:
        data = {}
    settings = GatewaySettings.load(path, **flags)  # the [gateway] table of this file
    where = path or Path("(no --config)")
    backends = _items(data, "backend", BackendConfig, where)
    if not backends:
        raise ConfigError(f"{where}: no [[backend]] configured")
    for b in backends:
        if not b.url.startswith(("http://", "https://")):
            raise ConfigError(f"{where}: backend url {b.url!r} must start with http:// or https://")
    keys = _items(data, "key", KeyConfig, where)
    parse_listen(settings.listen, ConfigError)
    return GatewayConfig(settings=settings, backends=backends, keys=keys)
