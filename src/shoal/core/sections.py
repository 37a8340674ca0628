"""``Section``: a capability's settings table, ``[gateway]`` or ``[controller]``
in the config file, with the core's precedence (flags > SHOAL_<SECTION>_* >
the TOML table > defaults), on pydantic-settings for typed validation.

A subclass sets ``section = "gateway"`` and
``model_config = SettingsConfigDict(env_prefix="SHOAL_GATEWAY_", extra="ignore")``.
"""

from __future__ import annotations

import os
from contextvars import ContextVar
from pathlib import Path
from typing import Any, ClassVar, Self

from pydantic import ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from shoal.core.config import config_path, read_toml
from shoal.errors import ConfigError

# The file a load reads: the one a command was given (--config), else config_path().
_FILE: ContextVar[Path | None] = ContextVar("shoal_settings_file", default=None)


def _table(section: str | None) -> tuple[Path, dict[str, Any]]:
    path = _FILE.get() or config_path()
    data = read_toml(path) if path.exists() else {}
    if section:
        data = data.get(section, {})
        if not isinstance(data, dict):
            raise ConfigError(f"[{section}] in {path} must be a table")
    else:
        data = {k: v for k, v in data.items() if not isinstance(v, dict)}
    return path, data


class _TomlSection(PydanticBaseSettingsSource):
    def __init__(self, settings_cls: type[BaseSettings], section: str | None) -> None:
        super().__init__(settings_cls)
        self._data = _table(section)[1]

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in self._data.items() if k in self.settings_cls.model_fields}


class Section(BaseSettings):
    """Base for a settings section; ``load(**flags)`` applies the precedence."""

    section: ClassVar[str | None] = None
    # SHOAL_<SECTION>_* names that belong to another settings object
    elsewhere: ClassVar[frozenset[str]] = frozenset()
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
    def load(cls, config: Path | None = None, **flags: Any) -> Self:
        """Build the settings from flags (None: not given), the environment and
        config (default: config_path()). A misspelt name, in the table or as a
        SHOAL_<SECTION>_ variable, is an error, not a default."""
        token = _FILE.set(config)
        try:
            cls._check_names()
            given = {k: v for k, v in flags.items() if v is not None}
            return cls(**given)
        except ValidationError as e:
            err = e.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise ConfigError(f"invalid setting {where}: {err['msg']}") from e
        finally:
            _FILE.reset(token)

    @classmethod
    def _check_names(cls) -> None:
        if not cls.section:
            return
        prefix = f"SHOAL_{cls.section.upper()}_"
        path, table = _table(cls.section)
        found = [(k, k.removeprefix(prefix).lower(), "the environment") for k in os.environ
                 if k.startswith(prefix)]  # fmt: skip
        found += [(k, k, f"[{cls.section}] in {path}") for k in table]
        for raw, name, where in found:
            if name not in cls.model_fields and name not in cls.elsewhere:
                raise ConfigError(f"unknown {cls.section} setting {raw} (in {where})")
