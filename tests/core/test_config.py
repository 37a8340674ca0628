from pathlib import Path

import pytest

from shoal.core.config import Settings
from shoal.errors import ConfigError


def test_precedence_flag_over_env_over_file_over_default(
    shoal_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert Settings.load().width == 8
    (shoal_home / "config.toml").write_text("width = 4\nport = 2001\n")
    assert Settings.load().width == 4
    monkeypatch.setenv("SHOAL_WIDTH", "16")
    s = Settings.load()
    assert (s.width, s.port) == (16, 2001)
    assert Settings.load(width=32).width == 32
    assert Settings.load(width=None).width == 16


def test_bad_config_file_is_a_config_error(shoal_home: Path) -> None:
    (shoal_home / "config.toml").write_text("width = [\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        Settings.load()
    (shoal_home / "config.toml").write_text("width = 'wide'\n")
    with pytest.raises(ConfigError, match="width"):
        Settings.load()


def test_unknown_top_level_key_and_bad_keepalive_are_refused(shoal_home: Path) -> None:
    (shoal_home / "config.toml").write_text("widht = 4\n[gateway]\nlisten = 'x'\n")
    with pytest.raises(ConfigError, match=r"unknown setting.*widht"):
        Settings.load()
    (shoal_home / "config.toml").write_text("keepalive_interval = 0.1\n")
    with pytest.raises(ConfigError, match="keepalive_interval"):
        Settings.load()
    (shoal_home / "config.toml").write_text("keepalive_interval = 2\nkeepalive_timeout = 3\n")
    assert Settings.load().keepalive.interval == 2.0
