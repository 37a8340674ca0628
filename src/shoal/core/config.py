"""Settings: flags over SHOAL_* environment variables over a TOML file over
defaults, in one settings object per section.

The TOML file is $SHOAL_CONFIG, else $SHOAL_HOME/config.toml (SHOAL_HOME
defaults to ~/.shoal). Top-level keys configure the core (``Settings`` here);
each capability reads its own table (``[gateway]``, ``[controller]``...)
through a subclass of ``shoal.core.sections.Section``.

The core's settings are read on every `shoal run`, so they are a dataclass
with a small loader: importing pydantic-settings is a large share of a
command's start-up. The long-running services use ``Section``.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
from pathlib import Path
from typing import Any, Self, Union, get_args, get_origin, get_type_hints

from shoal.core.keepalive import Keepalive
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


_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def _coerce(name: str, hint: Any, value: Any) -> Any:
    """Convert a flag, environment string or TOML value to the field's type."""
    args = get_args(hint)
    if get_origin(hint) in (Union, types.UnionType) and type(None) in args:
        if value is None or value == "":
            return None
        (hint,) = [a for a in args if a is not type(None)]
    bad = ConfigError(f"invalid setting {name}: {value!r} is not a valid {hint.__name__}")
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        raise bad
    if hint in (int, float):
        if isinstance(value, bool) or (isinstance(value, float) and hint is int):
            raise bad
        try:
            return hint(value)
        except (TypeError, ValueError):
            raise bad from None
    if hint is Path:
        if not isinstance(value, str | Path):
            raise bad
        return Path(value).expanduser()
    return value


@dataclasses.dataclass(frozen=True)
class Settings:
    """Core settings used by every command that talks to agents."""

    home: Path = dataclasses.field(default_factory=shoal_home)
    inventory: Path | None = None  # default: $SHOAL_HOME/inventory.toml if present
    ca_cert: Path | None = None  # default: $SHOAL_HOME/tls/ca.crt
    cert: Path | None = None  # default: $SHOAL_HOME/tls/client.crt
    key: Path | None = None  # default: $SHOAL_HOME/tls/client.key
    insecure: bool = False
    controller_url: str = "https://127.0.0.1:8443"  # the fleet controller's API
    port: int = DEFAULT_PORT
    connect_timeout: float = 5.0
    width: int = 8  # fan-out tree width; chosen by benchmarks/run_fanout.py
    bulk: str = "aead"  # copy's data plane: aead, mac (plain bytes, tagged), grpc
    output_cap: int = 1 << 20  # bytes of output kept per node when gathering
    keepalive_interval: float = 5.0  # seconds between pings on a quiet connection
    keepalive_timeout: float = 5.0  # seconds an unanswered ping takes to mean a dead peer
    # the agent: False runs commands without cgroups (benchmarks), loudly
    sandbox: bool = True
    # the agent at registration: cloud metadata services; "off" skips one
    metadata: bool = True  # False: ask none
    metadata_alibaba: str = "http://100.100.100.200"
    metadata_aws: str = "http://169.254.169.254"
    metadata_gcp: str = "http://metadata.google.internal"
    metadata_azure: str = "http://169.254.169.254"

    @classmethod
    def load(cls, **flags: Any) -> Self:
        """Build the settings; flags that are None were not given."""
        path = config_path()
        data = read_toml(path) if path.exists() else {}
        hints = get_type_hints(cls)
        unknown = sorted(k for k, v in data.items() if not isinstance(v, dict) and k not in hints)
        if unknown:  # tables belong to the capabilities ([gateway], [controller]...)
            raise ConfigError(f"{path}: unknown setting(s) {', '.join(unknown)}")
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            env = os.environ.get(f"SHOAL_{f.name.upper()}")
            for raw in (flags.get(f.name), env, data.get(f.name)):
                if raw is not None:
                    values[f.name] = _coerce(f.name, hints[f.name], raw)
                    break
        settings = cls(**values)
        settings.keepalive  # noqa: B018 -- checks the keepalive pair at load time
        return settings

    @property
    def keepalive(self) -> Keepalive:
        return Keepalive(self.keepalive_interval, self.keepalive_timeout)

    @property
    def tls_dir(self) -> Path:
        return self.home / "tls"

    def inventory_path(self) -> Path | None:
        if self.inventory is not None:
            return self.inventory
        default = self.home / "inventory.toml"
        return default if default.exists() else None
