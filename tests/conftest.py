"""Shared fixtures: a private SHOAL_HOME per test, and real PostgreSQL/Redis.

A test that needs PostgreSQL or Redis skips with the reason when the service
is absent, except under CI=true, where it fails: CI never passes by skipping.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

PG_HOST, PG_PORT = "127.0.0.1", 5432
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379


def pytest_configure(config: pytest.Config) -> None:
    """Every `shoal` a test starts inherits /dev/null as stdin: piped stdin
    goes to the nodes' commands, and a runner's open pipe must not. A test
    that pipes stdin says so (subprocess stdin=/input=)."""
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    if _reachable(host, port):
        return
    msg = f"{name} is not reachable at {host}:{port}"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{msg} (CI=true: a needed service must not be skipped)")
    pytest.skip(msg)


@pytest.fixture(autouse=True)
def shoal_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own SHOAL_HOME and no stray SHOAL_* settings."""
    for k in list(os.environ):
        if k.startswith("SHOAL_"):
            monkeypatch.delenv(k)
    home = tmp_path / "shoal-home"
    home.mkdir()
    monkeypatch.setenv("SHOAL_HOME", str(home))
    return home


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test, dropped afterwards."""
    require_service("PostgreSQL", PG_HOST, PG_PORT)
    import psycopg

    name = f"shoal_t_{uuid.uuid4().hex[:12]}"
    admin = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/test"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A Redis URL with a key prefix unique to this test; its keys are removed after."""
    require_service("Redis", REDIS_HOST, REDIS_PORT)
    import redis

    prefix = f"shoal-t-{uuid.uuid4().hex[:12]}"
    url = f"redis://{REDIS_HOST}:{REDIS_PORT}/0"
    os.environ["SHOAL_TEST_REDIS_PREFIX"] = prefix
    try:
        yield url
    finally:
        r = redis.Redis.from_url(url)
        keys = list(r.scan_iter(f"{prefix}*"))
        if keys:
            r.delete(*keys)
        os.environ.pop("SHOAL_TEST_REDIS_PREFIX", None)


@pytest.fixture
def cluster(shoal_home: Path) -> Iterator[Callable[..., Any]]:
    """A factory for a local cluster of real agent processes in this test's
    SHOAL_HOME: ``c = cluster(8)`` or ``cluster(64, per_process=16)`` returns a
    started LocalCluster (``c.names``, ``c.addresses``, ``c.inventory_path``,
    ``c.stop(name)``, ``c.kill(name)``, ``c.start_one(name)``). Every cluster
    is brought down in teardown, whatever the test did."""
    from shoal.deploy import LocalCluster

    made: list[LocalCluster] = []

    def make(n: int | list[str], per_process: int = 1, **kw: Any) -> LocalCluster:
        """kw: insecure, base_port, netns (root), rate: as LocalCluster.start."""
        c = LocalCluster(shoal_home)
        made.append(c)
        c.start(n, per_process=per_process, **kw)
        return c

    try:
        yield make
    finally:
        for c in made:
            c.down()
