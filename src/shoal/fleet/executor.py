"""The seam to fan-out: jobs run through an Executor.

``ProcessExecutor`` runs each job's fan-out through the library API in a
process of its own (``python -m shoal.fleet.jobproc``), so a hung or crashing
fan-out never takes the controller with it. The child answers in NodeState's
vocabulary; the fleet's job runs record it as the words below.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Protocol

from shoal.core.states import NodeState


class Executor(Protocol):
    async def run(
        self, nodes: str, command: str | None, action: str, exclude: str = ""
    ) -> dict[str, str]:
        """Run on a node set minus ``exclude``; return node -> ok|failed|timeout|..."""
        ...


# a node's state -> the word a job run records for it
STATES = {
    NodeState.PASS: "ok",
    NodeState.FAILED: "failed",
    NodeState.OOM: "oom",
    NodeState.TIMEOUT: "timeout",
    NodeState.UNREACHABLE: "unreachable",
    NodeState.REFUSED: "refused",
}


class ProcessExecutor:
    def __init__(
        self,
        argv0: list[str] | None = None,
        timeout: float = 3600.0,
        env: dict[str, str] | None = None,
    ) -> None:
        from shoal.fleet.cleanenv import job_env

        self.argv0 = argv0 or [sys.executable, "-m", "shoal.fleet.jobproc"]
        self.timeout = timeout
        self.env = job_env() if env is None else env  # none of the controller's own

    async def run(
        self, nodes: str, command: str | None, action: str, exclude: str = ""
    ) -> dict[str, str]:
        if action not in ("command", "ping", "facts"):
            raise ValueError(f"unknown action {action}")
        argv = [*self.argv0, action, "-w", nodes, *(["-x", exclude] if exclude else [])]
        if action == "command":
            # one argument: the agent runs it through /bin/sh -c verbatim, quotes and all
            argv += ["--", command or ""]
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
            if "error" in data:
                return {"*": f"failed: {data['error']}"}
            return {n: STATES.get(NodeState(s), "failed") for n, s in data["nodes"].items()}
        except (ValueError, KeyError, AttributeError, TypeError):
            msg = err.decode(errors="replace").strip().splitlines()
            return {"*": "failed: " + (msg[-1] if msg else f"exit {proc.returncode}")}
