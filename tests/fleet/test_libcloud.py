"""provider=libcloud: Apache Libcloud's driver interface (each call in a
process of its own), driven through a Libcloud test driver that keeps its
hosts in a file (tests/fleet/named_cloud.py)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from shoal.errors import ConfigError
from shoal.fleet.providers import LibcloudProvider, ProviderError

HERE = Path(__file__).resolve().parent


def cloud_config(tmp_path: Path, **node: Any) -> tuple[Path, Path]:
    state = tmp_path / "cloud.json"
    secret = tmp_path / "token"
    secret.write_text("s3cret-token\n")
    node = {"size": "1", "image": "1", **node}
    lines = [
        'driver = "named_cloud:NamedCloud"',
        "[args]",
        f'creds_file = "{secret}"',
        f'state = "{state}"',
        "[node]",
        *(f"{k} = {json.dumps(v)}" for k, v in node.items()),
        "[node.extra]",
        'ex_userdata = "shoal agent --name {name}"',
    ]
    cfg = tmp_path / "cloud.toml"
    cfg.write_text("\n".join(lines) + "\n")
    return cfg, state


@pytest.fixture(autouse=True)
def importable_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(HERE))
    monkeypatch.setenv("PYTHONPATH", str(HERE))  # for the controller process


def test_calls_are_idempotent_by_name(tmp_path: Path) -> None:
    cfg, state = cloud_config(tmp_path)
    p = LibcloudProvider(cfg)
    first = asyncio.run(p.create("cn7", "default", "replace:cn7:1"))
    again = asyncio.run(p.create("cn7", "default", "replace:cn7:1"))  # a resumed operation
    assert first == again
    d = json.loads(state.read_text())
    assert list(d["hosts"].values()) == [
        {
            "name": "cn7",
            "size": "1",
            "image": "1",
            "extra": {"ex_userdata": "shoal agent --name cn7"},
        }
    ]
    assert d["calls"] == [["create", "cn7", "s3cret-token"]]  # the secret came from its file
    asyncio.run(p.delete("cn7", "default", "replace:cn7:2"))
    asyncio.run(p.delete("cn7", "default", "replace:cn7:2"))  # already gone: still fine
    assert json.loads(state.read_text())["hosts"] == {}


def test_bad_configs_are_one_line_errors(tmp_path: Path) -> None:
    cfg, _ = cloud_config(tmp_path)
    bad = tmp_path / "bad.toml"
    bad.write_text('driver = "no-such-cloud"\n')
    with pytest.raises(ConfigError, match="driver 'no-such-cloud'"):
        LibcloudProvider(bad)
    bad.write_text("[args]\n")
    with pytest.raises(ConfigError, match="driver: a Libcloud provider name"):
        LibcloudProvider(bad)
    bad.write_text(cfg.read_text().replace(str(tmp_path / "token"), str(tmp_path / "missing")))
    with pytest.raises(ConfigError, match=r"args\.creds_file"):
        LibcloudProvider(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        LibcloudProvider(tmp_path / "nope.toml")


def test_unknown_size_fails_the_call_with_the_reason(tmp_path: Path) -> None:
    cfg, _ = cloud_config(tmp_path, size="huge")
    with pytest.raises(ProviderError, match="no size 'huge'"):
        asyncio.run(LibcloudProvider(cfg).create("cn1", "default", "k"))


@pytest.mark.timeout(300)
def test_watchdog_replaces_through_libcloud(start_controller, tmp_path: Path, until) -> None:
    cfg, state = cloud_config(tmp_path)
    ctl = start_controller(
        boot_timeout=1,
        check_interval=0.3,
        policy="replace",
        provider="libcloud",
        libcloud_config=cfg,
        max_pool_percent=100,
        window=0.1,
    )
    with ctl.client() as c:
        c.post("/v1/nodes", json={"name": "cn5"}).raise_for_status()
        until(lambda: sum(e["kind"] == "replaced" for e in c.get("/v1/events").json()) >= 2)
        replaced = [e for e in c.get("/v1/events").json() if e["kind"] == "replaced"]
        assert replaced[0]["reason"].startswith("replace:cn5:1 id=vm-")
    d = json.loads(state.read_text())
    calls = [c[:2] for c in d["calls"]]
    # each replacement deletes the old host first: never two hosts named cn5
    assert calls[:3] == [["create", "cn5"], ["destroy", "cn5"], ["create", "cn5"]]
    assert len([h for h in d["hosts"].values() if h["name"] == "cn5"]) <= 1
    assert "s3cret-token" not in ctl.log.read_text()
