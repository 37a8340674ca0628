"""Capability settings sections: precedence, the file a command names, and
misspelt names refused (the gateway's [gateway] table as the example)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shoal.errors import ConfigError
from shoal.gateway.config import load_config

BACKEND = '[[backend]]\nurl = "http://127.0.0.1:9"\n'


def test_the_given_file_is_read_without_touching_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SHOAL_CONFIG", raising=False)
    monkeypatch.setenv("SHOAL_HOME", str(tmp_path / "home"))
    f = tmp_path / "gw.toml"
    f.write_text('[gateway]\nlisten = "127.0.0.1:8181"\nretries = 5\n' + BACKEND)
    before = dict(os.environ)
    cfg = load_config(f, retries=1)  # a flag beats the file
    assert (cfg.settings.listen, cfg.settings.retries) == ("127.0.0.1:8181", 1)
    assert dict(os.environ) == before


@pytest.mark.parametrize(
    ("table", "env", "named"),
    [
        ("retrys = 5\n", {}, "retrys"),
        ("", {"SHOAL_GATEWAY_QUEUE_TIMOUT": "3"}, "SHOAL_GATEWAY_QUEUE_TIMOUT"),
    ],
)
def test_a_misspelt_setting_is_an_error_not_a_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, table: str, env: dict[str, str], named: str
) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    f = tmp_path / "gw.toml"
    f.write_text("[gateway]\n" + table + BACKEND)
    with pytest.raises(ConfigError, match=f"unknown gateway setting {named}"):
        load_config(f)


def test_a_bad_listen_address_is_a_config_error(tmp_path: Path) -> None:
    f = tmp_path / "gw.toml"
    f.write_text('[gateway]\nlisten = "localhost"\n' + BACKEND)
    with pytest.raises(ConfigError, match="expected HOST:PORT"):
        load_config(f)
