"""Start real backend and gateway processes on free ports (tests and bench)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
STARTED: list[Proc] = []  # every process started here; conftest stops a test's leftovers
API = "/jobe/index.php/restapi"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Proc:
    url: str
    popen: subprocess.Popen[bytes]

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()

    def kill(self) -> None:
        self.popen.kill()
        self.popen.wait()


def _wait(url: str, p: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if p.poll() is not None:
            raise RuntimeError(f"{what} exited with {p.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    p.kill()
    raise RuntimeError(f"{what} did not start")


def start_backend(
    tmp: Path,
    slots: int = 4,
    wait: float = 0.5,
    delay: float = 0.0,
    port: int | None = None,
    echo: bool = False,
    cputime_limit: int | None = None,
) -> Proc:
    port = port or free_port()
    files = tmp / f"jobe-{port}"
    argv = [sys.executable, str(HERE / "jobe_backend.py"), "--port", str(port)]
    argv += ["--slots", str(slots), "--overload-wait", str(wait), "--delay", str(delay)]
    argv += ["--files", str(files)] + (["--echo"] if echo else [])
    if cputime_limit is not None:
        argv += ["--cputime-limit", str(cputime_limit)]
    p = subprocess.Popen(argv)
    url = f"http://127.0.0.1:{port}"
    STARTED.append(proc := Proc(url, p))
    _wait(url + API + "/languages", p, "backend")
    return proc


def write_config(path: Path, backends: list[dict[str, object]], extra: str = "") -> Path:
    lines = [extra]
    for b in backends:
        lines.append("[[backend]]")
        for k, v in b.items():
            lines.append(f"{k} = {v!r}" if not isinstance(v, str) else f'{k} = "{v}"')
    path.write_text("\n".join(lines) + "\n")
    return path


def start_gateway(
    config: Path, *args: str, env: dict[str, str] | None = None, nofile: int | None = None
) -> Proc:
    """``nofile``: the gateway's open-file limit (soft and hard), to run it out of
    descriptors with a few hundred sockets rather than 20,000."""
    port = free_port()
    argv = [sys.executable, "-m", "shoal.cli.main", "gateway", "serve", "--config", str(config)]
    argv += ["--listen", f"127.0.0.1:{port}", *args]
    log = open(config.with_suffix(f".{port}.log"), "wb")

    def limit() -> None:
        if nofile is not None:
            import resource

            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    env = {**os.environ, **(env or {})}
    p = subprocess.Popen(argv, env=env, stderr=log, preexec_fn=limit if nofile else None)
    url = f"http://127.0.0.1:{port}"
    STARTED.append(proc := Proc(url, p))
    _wait(url + "/shoal/status", p, "gateway")
    return proc


def control(backend: Proc, **body: object) -> dict[str, object]:
    r = httpx.post(backend.url + "/control", json=body, timeout=5)
    return dict(r.json())
