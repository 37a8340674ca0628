"""Settings: flags over SHOAL_* environment variables over a TOML file over
defaults, in one settings object per section.

The TOML file is $SHOAL_CONFIG, else $SHOAL_HOME/config.toml (SHOAL_HOME
defaults to ~/.shoal). Top-level keys configure the core; each capability
reads its own table (``[gateway]``, ``[controller]``...) through a subclass of
``Section`` with ``section = "gateway"`` and env prefix ``SHOAL_GATEWAY_``.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, ClassVar, Self

from pydantic import ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from shoal.errors import ConfigError

DEFAULT_PORT = 1995


def shoal_home() -> Path:
    return Path(os.environ.get("SHOAL_HOME") or Path.home() / ".shoal").expanduser()


def config_path() -> Path:
    env = os.environ.get("SHOAL_CONFIG")
    return Path(env).expanduser() if env else shoal_home() / "config.toml"


def read_toml(path: Path, what: str = "configuration file") -> dict[str, Any]:
    """Parse a TOML file into a dict, turning every failure into a ConfigError."""
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError as e:
        raise ConfigError(f"{what} {path} does not exist") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{what} {path} is not valid TOML: {e}") from e
    except OSError as e:
        raise ConfigError(f"cannot read {what} {path}: {e.strerror}") from e


class _TomlSection(PydanticBaseSettingsSource):
    def __init__(self, settings_cls: type[BaseSettings], section: str | None) -> None:
        super().__init__(settings_cls)
        path = config_path()
        data = read_toml(path) if path.exists() else {}
        if section:
            data = data.get(section, {})
            if not isinstance(data, dict):
                raise ConfigError(f"[{section}] in {path} must be a table")
        else:
            data = {k: v for k, v in data.items() if not isinstance(v, dict)}
        self._data = data

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in self._data.items() if k in self.settings_cls.model_fields}


class Section(BaseSettings):
    """Base for a settings section; ``load(**flags)`` applies the precedence."""

    section: ClassVar[str | None] = None
    model_config = SettingsConfigDict(env_prefix="SHOAL_", extra="ignore")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _TomlSection(settings_cls, cls.section))

    @classmethod
    def load(cls, **flags: Any) -> Self:
        """Build the settings; flags that are None were not given."""
        given = {k: v for k, v in flags.items() if v is not None}
        try:
            return cls(**given)
        except ValidationError as e:
            err = e.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise ConfigError(f"invalid setting {where}: {err['msg']}") from e


class Settings(Section):
    """Core settings used by every command that talks to agents."""

    home: Path = shoal_home()
    inventory: Path | None = None  # default: $SHOAL_HOME/inventory.toml if present
    ca_cert: Path | None = None  # default: $SHOAL_HOME/tls/ca.crt
    cert: Path | None = None  # default: $SHOAL_HOME/tls/client.crt
    key: Path | None = None  # default: $SHOAL_HOME/tls/client.key
    insecure: bool = False
    port: int = DEFAULT_PORT
    connect_timeout: float = 5.0
    width: int = 8  # fan-out tree width; chosen by bench/run_fanout.py
    output_cap: int = 1 << 20  # bytes of output kept per node when gathering

    @property
    def tls_dir(self) -> Path:
        return self.home / "tls"

    def inventory_path(self) -> Path | None:
        if self.inventory is not None:
            return self.inventory
        default = self.home / "inventory.toml"
        return default if default.exists() else None
