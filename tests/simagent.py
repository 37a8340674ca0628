"""A stand-in agent for the controller's tests: registers with facts and
heartbeats (shoal.agent.registration), serves nothing.

    python tests/simagent.py --controller URL --name NAME [--tls-dir D] [--interval S]
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from shoal.agent.registration import run_registration
from shoal.core.tls import Identity

PATH = Path(__file__).resolve()


def argv(controller: str, name: str, tls_dir: Path | None, interval: float) -> list[str]:
    """The command line that starts one."""
    out = [sys.executable, str(PATH), "--controller", controller, "--name", name]
    out += ["--interval", str(interval)]
    return out + (["--tls-dir", str(tls_dir)] if tls_dir else [])


def main() -> None:
    p = argparse.ArgumentParser(description="register with a shoal controller and heartbeat")
    p.add_argument("--controller", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--tls-dir", type=Path)
    p.add_argument("--interval", type=float, default=10.0)
    p.add_argument("--pool")
    a = p.parse_args()
    ident = Identity.in_dir(a.tls_dir, a.name) if a.tls_dir else None

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run_registration(a.controller, ident, a.name, a.interval, stop, a.pool)

    asyncio.run(run())


if __name__ == "__main__":
    main()
