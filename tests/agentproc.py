"""Real agent processes for tests: `shoal agent` as shoal.deploy.launch starts
it, on port 0 (each reports its port on stdout), always killed in teardown."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from shoal.core import tls
from shoal.deploy import AgentNode, agent_argv, agent_env, ready_port


@dataclass
class Agent:
    name: str
    port: int
    proc: subprocess.Popen[str]
    log: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)


@dataclass
class Agents:
    home: Path
    started: list[Agent] = field(default_factory=list)

    def start(
        self,
        name: str,
        *,
        insecure: bool = False,
        env: dict[str, str] | None = None,
        files_root: Path | None = None,
        controller: str | None = None,
        pool: str | None = None,
        spares: int | None = None,  # --faas-spares; None: the agent's default
    ) -> Agent:
        tls_dir = self.home / "tls"
        if not insecure:
            if not (tls_dir / "ca.crt").exists():
                tls.init_ca(tls_dir)
                tls.issue(tls_dir, tls.CLIENT_NAME, role=tls.OPERATOR)
            if not (tls_dir / f"{name}.crt").exists():
                tls.issue(tls_dir, name)
        log = self.home / f"agent-{name}.log"
        node = AgentNode(name, tls_dir=tls_dir, insecure=insecure, files_root=files_root)
        with log.open("w") as err:
            proc = subprocess.Popen(
                agent_argv([node], controller=controller)
                + (["--pool", pool] if pool else [])
                + (["--faas-spares", str(spares)] if spares is not None else []),
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                env=agent_env(**(env or {})),
            )
        assert proc.stdout is not None
        ready = ready_port(proc.stdout.readline(), [name])
        if ready is None:
            proc.kill()
            raise RuntimeError(f"agent {name} did not start: {log.read_text()}")
        a = Agent(name, ready[1], proc, log)
        self.started.append(a)
        return a

    def inventory(
        self, extra: dict[str, str] | None = None, groups: dict[str, str] | None = None
    ) -> Path:
        lines = ["[nodes]"]
        lines += [f'{a.name} = "{a.address}"' for a in self.started]
        lines += [f'{k} = "{v}"' for k, v in (extra or {}).items()]
        if groups:
            lines += ["[groups]"] + [f'{k} = "{v}"' for k, v in groups.items()]
        path = self.home / "inventory.toml"
        path.write_text("\n".join(lines) + "\n")
        return path

    def workers(self, spares: bool = False) -> list[psutil.Process]:
        """The faas container workers these agents run; spares too if asked
        (a waiting spare works in / until it is given a function)."""
        out = []
        for a in self.started:
            try:
                kids = psutil.Process(a.proc.pid).children(recursive=True)
            except psutil.NoSuchProcess:
                continue
            for k in kids:
                try:
                    if "shoal.agent.worker" not in " ".join(k.cmdline()):
                        continue
                    if spares or not (k.environ().get("SHOAL_SPARE") and k.cwd() == "/"):
                        out.append(k)
                except psutil.Error:
                    continue
        return out

    def stop_all(self) -> None:
        for a in self.started:
            a.kill()


@pytest.fixture
def agents(shoal_home: Path) -> Iterator[Agents]:
    a = Agents(shoal_home)
    try:
        yield a
    finally:
        a.stop_all()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def marked(marker: str) -> list[psutil.Process]:
    """Live processes whose command line contains marker (shoal clients, which
    carry the command in their own arguments, are not counted)."""
    out = []
    for p in psutil.process_iter(["cmdline", "status"]):
        try:
            line = " ".join(p.info["cmdline"] or [])
            if (
                p.info["status"] != psutil.STATUS_ZOMBIE
                and marker in line
                and "shoal.cli.main" not in line
            ):
                out.append(p)
        except psutil.Error:
            continue
    return out


def wait_for(cond: object, what: str, limit: float = 30.0) -> None:
    """Poll until cond() is true (a generous bound against hangs, not a timing check)."""
    deadline = time.monotonic() + limit
    while not cond():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.05)


def shoal(*args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-m", "shoal.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=120,
        **kw,
    )
