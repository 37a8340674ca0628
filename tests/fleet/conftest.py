"""Fleet fixtures: a real controller process over real mutual TLS, on SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from shoal.core import tls


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fleet.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def tls_dir(shoal_home: Path) -> Path:
    d = shoal_home / "tls"
    tls.init_ca(d)
    tls.issue(d, tls.CLIENT_NAME, role=tls.OPERATOR)
    tls.issue(d, "controller", sans=["127.0.0.1"], role=tls.CONTROLLER)
    return d


@dataclass
class Ctl:
    url: str
    tls_dir: Path
    proc: subprocess.Popen[bytes]
    log: Path
    argv: list[str]
    env: dict[str, str]

    def client(self, name: str = tls.CLIENT_NAME, tls_dir: Path | None = None) -> httpx.Client:
        import ssl

        d = tls_dir or self.tls_dir
        if not (d / f"{name}.crt").exists():
            tls.issue(d, name)
        ctx = ssl.create_default_context(cafile=str(self.tls_dir / "ca.crt"))
        ctx.load_cert_chain(str(d / f"{name}.crt"), str(d / f"{name}.key"))
        return httpx.Client(base_url=self.url, verify=ctx, timeout=30, trust_env=False)

    def env_home(self) -> Path:
        return Path(self.env["SHOAL_HOME"])

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(30)

    def restart(self) -> None:
        self.kill(signal.SIGTERM)
        self.proc = start_process(self.argv, self.env, self.log)
        wait_healthy(self)


def start_process(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    f = log.open("ab")
    return subprocess.Popen(argv, env=env, stdout=f, stderr=subprocess.STDOUT)


def wait_healthy(ctl: Ctl, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    with ctl.client() as c:
        while time.monotonic() < deadline:
            if ctl.proc.poll() is not None:
                raise AssertionError(f"controller exited: {ctl.log.read_text()[-3000:]}")
            try:
                if c.get("/healthz").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
    raise AssertionError(f"controller not healthy: {ctl.log.read_text()[-3000:]}")


def until(fn: Any, timeout: float = 60, interval: float = 0.2) -> Any:
    """Poll until fn() is truthy (a generous bound, not a timed assertion)."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last: {v!r})")
        time.sleep(interval)


@pytest.fixture
def start_controller(db_url: str, tls_dir: Path, tmp_path: Path) -> Iterator[Any]:
    started: list[Ctl] = []

    def _start(db: str | None = None, wrap: list[str] | None = None, **settings: Any) -> Ctl:
        """settings: SHOAL_CONTROLLER_*; db: another URL than the fixture's;
        wrap: a command prefix that execs the controller (e.g. in a namespace)."""
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHOAL_CONTROLLER_")}
        env["SHOAL_METADATA"] = "off"
        for k, v in settings.items():
            env[f"SHOAL_CONTROLLER_{k.upper()}"] = str(v)
        argv = [
            *(wrap or []),
            sys.executable,
            "-m",
            "shoal.cli.main",
            "controller",
            "--db",
            db or db_url,
            "--listen",
            f"127.0.0.1:{port}",
        ]
        log = tmp_path / f"controller-{port}.log"
        ctl = Ctl(
            f"https://127.0.0.1:{port}", tls_dir, start_process(argv, env, log), log, argv, env
        )
        started.append(ctl)
        wait_healthy(ctl)
        return ctl

    yield _start
    for c in started:
        c.kill(signal.SIGTERM)
    # agents the local provider started outlive the controller: stop them too,
    # whatever the test did (a failed test must not leave agents behind)
    from shoal.fleet.localhost import holder

    for home in {c.env_home() for c in started}:
        for lock in (home / "local-provider").glob("*.lock"):
            h = holder(lock)
            if h is not None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(h.pid, signal.SIGKILL)


@pytest.fixture(name="until")
def until_fixture() -> Any:
    return until
