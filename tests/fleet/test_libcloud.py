"""provider=libcloud: Apache Libcloud's EC2 driver (each call in a process of
its own) against a real HTTP server speaking EC2's Query API and checking
its signatures (tests/fleet/fake_ec2.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_ec2 import FakeEC2

from shoal.errors import ConfigError, ProviderError
from shoal.fleet.providers import LibcloudProvider

KEY, SECRET = "AKIDSHOALTEST", "s3cret-signing-key"


@pytest.fixture
def ec2() -> Iterator[FakeEC2]:
    with FakeEC2(KEY, SECRET) as f:
        yield f


def cloud_config(tmp_path: Path, ec2: FakeEC2, secret: str = SECRET, **node: Any) -> Path:
    secret_file = tmp_path / "aws-secret"
    secret_file.write_text(secret + "\n")
    node = {"size": "t3.micro", "image": "ami-0shoal", "location": "us-east-1b", **node}
    lines = [
        'driver = "ec2"',
        "[args]",
        f'key = "{KEY}"',
        f'secret_file = "{secret_file}"',
        'region = "us-east-1"',
        'signature_version = "4"',
        'host = "127.0.0.1"',
        f"port = {ec2.port}",
        "secure = false",
        "[node]",
        *(f"{k} = {json.dumps(v)}" for k, v in node.items()),
        "[node.extra]",
        'ex_userdata = "#!/bin/sh\\nshoal agent --name {name}"',
    ]
    cfg = tmp_path / "cloud.toml"
    cfg.write_text("\n".join(lines) + "\n")
    return cfg


def test_calls_are_idempotent_by_name(tmp_path: Path, ec2: FakeEC2) -> None:
    p = LibcloudProvider(cloud_config(tmp_path, ec2))
    first = asyncio.run(p.create("cn7", "default", "replace:cn7:1"))
    again = asyncio.run(p.create("cn7", "default", "replace:cn7:1"))  # a resumed operation
    assert first == again and first.startswith("i-")
    assert ec2.calls == [("RunInstances", "cn7")]
    x = ec2.instances[first]
    assert (x["type"], x["image"], x["zone"]) == ("t3.micro", "ami-0shoal", "us-east-1b")
    assert x["userdata"] == "#!/bin/sh\nshoal agent --name cn7"
    asyncio.run(p.delete("cn7", "default", "replace:cn7:2"))
    asyncio.run(p.delete("cn7", "default", "replace:cn7:2"))  # terminated: still fine
    assert ec2.calls == [("RunInstances", "cn7"), ("TerminateInstances", "cn7")]
    assert ec2.live("cn7") == []
    # EC2 lists a terminated instance for a while: it is not this name's host
    third = asyncio.run(p.create("cn7", "default", "replace:cn7:3"))
    assert third != first and ec2.live("cn7") == [third]


def test_bad_configs_are_one_line_errors(tmp_path: Path, ec2: FakeEC2) -> None:
    cfg = cloud_config(tmp_path, ec2)
    bad = tmp_path / "bad.toml"
    bad.write_text('driver = "no-such-cloud"\n')
    with pytest.raises(ConfigError, match="driver 'no-such-cloud'"):
        LibcloudProvider(bad)
    bad.write_text("[args]\n")
    with pytest.raises(ConfigError, match="driver: a Libcloud provider name"):
        LibcloudProvider(bad)
    bad.write_text(cfg.read_text().replace("aws-secret", "missing"))
    with pytest.raises(ConfigError, match=r"args\.secret_file"):
        LibcloudProvider(bad)
    bad.write_text(cfg.read_text().replace('region = "us-east-1"', 'region = "mars-1"'))
    with pytest.raises(ProviderError, match="ValueError") as e:  # the driver's own check
        asyncio.run(LibcloudProvider(bad).create("cn1", "default", "k"))
    assert SECRET not in str(e.value)
    with pytest.raises(ConfigError, match="does not exist"):
        LibcloudProvider(tmp_path / "nope.toml")
    assert ec2.calls == []


def test_cloud_refusals_fail_the_call_with_the_reason(tmp_path: Path, ec2: FakeEC2) -> None:
    p = LibcloudProvider(cloud_config(tmp_path, ec2, size="huge"))
    with pytest.raises(ProviderError, match="no size 'huge'"):
        asyncio.run(p.create("cn1", "default", "k"))
    p = LibcloudProvider(cloud_config(tmp_path, ec2, secret="an-old-key"))
    with pytest.raises(ProviderError, match="SignatureDoesNotMatch") as e:
        asyncio.run(p.create("cn1", "default", "k"))
    assert "an-old-key" not in str(e.value)
    assert ec2.calls == []


@pytest.mark.timeout(300)
def test_watchdog_replaces_through_libcloud(
    start_controller: Any, tmp_path: Path, until: Any, ec2: FakeEC2
) -> None:
    ctl = start_controller(
        boot_timeout=1,
        check_interval=0.3,
        policy="replace",
        provider="libcloud",
        libcloud_config=cloud_config(tmp_path, ec2),
        max_pool_percent=100,
        window=0.1,
    )
    with ctl.client() as c:
        c.post("/v1/nodes", json={"name": "cn5"}).raise_for_status()
        until(lambda: sum(e["kind"] == "replaced" for e in c.get("/v1/events").json()) >= 2)
        replaced = [e for e in c.get("/v1/events").json() if e["kind"] == "replaced"]
        assert replaced[0]["reason"].startswith("replace:cn5:1 id=i-")
    # each replacement terminates the old instance first: never two named cn5
    assert ec2.calls[:3] == [
        ("RunInstances", "cn5"),
        ("TerminateInstances", "cn5"),
        ("RunInstances", "cn5"),
    ]
    assert len(ec2.live("cn5")) <= 1
    assert SECRET not in ctl.log.read_text()
