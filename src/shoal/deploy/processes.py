"""Agent processes of a local cluster: started in a session of their own,
logging to a file, waited for until ready, stopped with a grace."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Collection, Mapping
from pathlib import Path

from shoal.deploy.launch import ready_port
from shoal.deploy.state import Proc
from shoal.errors import ClusterError

READY_TIMEOUT = 120.0  # seconds for every agent to print `ready` (1,024 nodes on 2 cores)
STOP_GRACE = 10.0  # seconds between SIGTERM and SIGKILL


def spawn(
    argv: list[str], log: Path, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    # Popen, not asyncio's subprocess: these agents outlive this event
    # loop, and closing an asyncio subprocess transport kills its child.
    with log.open("wb") as out:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd="/",
            env=env,
        )


def create_time(pid: int) -> float:
    import psutil

    try:
        return float(psutil.Process(pid).create_time())
    except psutil.Error:
        return 0.0


async def await_ready(
    proc: Proc, popen: subprocess.Popen[bytes] | None, timeout: float = READY_TIMEOUT
) -> dict[str, int]:
    """Read proc's log until every node of proc printed `ready NAME PORT`."""
    log = Path(proc.log)
    want = set(proc.names)
    got: dict[str, int] = {}
    deadline = time.monotonic() + timeout
    while True:
        got.update(_ready_lines(log, want))
        if len(got) == len(want):
            return got
        if popen is not None and popen.poll() is not None:
            raise ClusterError(
                f"agent process for {proc.names[0]} exited ({popen.returncode}):"
                f" {_tail(log)} (log: {log})"
            )
        if time.monotonic() > deadline:
            raise ClusterError(f"agents {proc.names[0]}... not ready in time (log: {log})")
        await asyncio.sleep(0.05)


def terminate(
    procs: list[Proc],
    sig: int = signal.SIGTERM,
    popens: dict[int, subprocess.Popen[bytes]] | None = None,
) -> None:
    """Signal every live proc, SIGKILL its session after STOP_GRACE; reap the
    ones that are our children (popens, pid -> Popen: removed from it)."""
    import psutil

    live = []
    for p in procs:
        if not p.alive():
            continue
        with contextlib.suppress(ProcessLookupError):
            os.kill(p.pid, sig)  # the agent kills its own commands on SIGTERM
        with contextlib.suppress(psutil.Error):
            live.append(psutil.Process(p.pid))
    _, stragglers = psutil.wait_procs(live, timeout=STOP_GRACE)
    for s in stragglers:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(s.pid, signal.SIGKILL)  # its session: the agent and its commands
    psutil.wait_procs(stragglers, timeout=STOP_GRACE)
    for p in procs:
        popen = (popens or {}).pop(p.pid, None)
        if popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                popen.wait(timeout=1)


def _ready_lines(log: Path, want: Collection[str]) -> dict[str, int]:
    found = (ready_port(line, want) for line in log.read_text(errors="replace").splitlines())
    return dict(r for r in found if r is not None)


def _tail(log: Path, n: int = 3) -> str:
    try:
        lines = log.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(lines[-n:])
