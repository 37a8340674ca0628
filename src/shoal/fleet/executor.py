"""The seam to fan-out: jobs run through an Executor.

``CliExecutor`` calls the stable CLI contract, ``shoal run --json -w NODES
-- CMD`` / ``shoal ping --json -w NODES``, whose JSON is {"nodes": {name:
{"state": "PASS"|"FAILED"|...}}, ...}: a job's run is its own process, so a
hung or crashing fan-out never takes the controller with it.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Protocol


class Executor(Protocol):
    async def run(
        self, nodes: str, command: str | None, action: str, exclude: str = ""
    ) -> dict[str, str]:
        """Run on a node set minus ``exclude``; return node -> ok|failed|timeout|..."""
        ...


# the summary labels `shoal run --json` prints -> the wire's node states
STATES = {
    "PASS": "ok",
    "FAILED": "failed",
    "TIMEOUT": "timeout",
    "UNREACHABLE": "unreachable",
    "REFUSED": "refused",
}


class CliExecutor:
    def __init__(
        self,
        argv0: list[str] | None = None,
        timeout: float = 3600.0,
        env: dict[str, str] | None = None,
    ) -> None:
        from shoal.fleet.cleanenv import job_env

        self.argv0 = argv0 or [sys.executable, "-m", "shoal.cli.main"]
        self.timeout = timeout
        self.env = job_env() if env is None else env  # none of the controller's own

    async def run(
        self, nodes: str, command: str | None, action: str, exclude: str = ""
    ) -> dict[str, str]:
        nodes_args = ["-w", nodes, *(["-x", exclude] if exclude else [])]
        if action == "command":
            # one argument: the agent runs it through /bin/sh -c verbatim, quotes and all
            argv = [*self.argv0, "run", "--json", *nodes_args, "--", command or ""]
        elif action == "ping":
            argv = [*self.argv0, "ping", "--json", *nodes_args]
        elif action == "facts":
            argv = [*self.argv0, "facts", "--json", *nodes_args]
        else:
            raise ValueError(f"unknown action {action}")
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self.env,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), self.timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return {"*": "timeout"}
        try:
            data = json.loads(out)
            return {n: STATES.get(str(r.get("state")), "failed") for n, r in data["nodes"].items()}
        except (ValueError, KeyError, AttributeError, TypeError):
            msg = err.decode(errors="replace").strip().splitlines()
            return {"*": "failed: " + (msg[-1] if msg else f"exit {proc.returncode}")}
