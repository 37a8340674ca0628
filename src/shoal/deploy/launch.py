"""How an agent process is started: the one argv and environment builder for
everything that launches `shoal agent` (the local cluster, the fleet's local
provider, tests, benchmarks).

    argv = agent_argv([AgentNode("n1", tls_dir=home / "tls")], controller=url)
    argv = agent_argv(nodes, spec_file=path)          # K agents in one process
    argv = agent_argv([node], isolation=Isolation(hostname="n1", tmp=d))
    proc = subprocess.Popen(argv, env=agent_env(), stdout=subprocess.PIPE, text=True)
    name, port = ready_port(proc.stdout.readline())

The agent is `python -m shoal.cli.main agent` (a subprocess, not an import:
deploy sits below the agent and the CLI). It prints `ready NAME PORT` on
stdout for each node once that node listens.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from shoal.deploy.isolate import Isolation
from shoal.errors import ConfigError

AGENT_MODULE = ["-m", "shoal.cli.main", "agent"]


@dataclass(frozen=True)
class AgentNode:
    """One agent: its name, where it listens (port 0: a free one, printed in
    its ready line) and its credentials (tls_dir None: the agent's default)."""

    name: str
    host: str = "127.0.0.1"
    port: int = 0
    tls_dir: Path | None = None
    insecure: bool = False
    files_root: Path | None = None

    @property
    def listen(self) -> str:
        return f"{self.host}:{self.port}"

    def flags(self) -> list[str]:
        argv = ["--name", self.name, "--listen", self.listen]
        if self.insecure:
            argv.append("--insecure")
        elif self.tls_dir is not None:
            argv += ["--tls-dir", str(self.tls_dir)]
        if self.files_root is not None:
            argv += ["--files-root", str(self.files_root)]
        return argv

    def spec(self) -> dict[str, object]:
        """This node as an entry of `shoal agent --spec-file`."""
        entry: dict[str, object] = {"name": self.name, "host": self.host, "port": self.port}
        entry["insecure"] = self.insecure
        if self.tls_dir is not None:
            entry["tls_dir"] = str(self.tls_dir)
        if self.files_root is not None:
            entry["files_root"] = str(self.files_root)
        return entry


def agent_argv(
    nodes: Sequence[AgentNode],
    *,
    spec_file: Path | None = None,
    controller: str | None = None,
    heartbeat: float | None = None,
    isolation: Isolation | None = None,
) -> list[str]:
    """The command starting one agent process that hosts nodes: one node by
    flags; several (per-process mode) by a spec file written to spec_file.
    controller: a fleet controller URL to register and heartbeat with."""
    argv = [sys.executable, *AGENT_MODULE]
    if len(nodes) == 1:
        argv += nodes[0].flags()
    elif not nodes:
        raise ConfigError("an agent process needs at least one node")
    elif spec_file is None:
        raise ConfigError("several agents in one process need a spec file")
    else:
        spec_file.write_text(json.dumps([n.spec() for n in nodes]))
        argv += ["--spec-file", str(spec_file)]
    if controller:
        argv += ["--controller", controller]
    if heartbeat is not None:
        argv += ["--heartbeat", f"{heartbeat:g}"]
    return isolation.wrap(argv) if isolation is not None else argv


def agent_env(base: Mapping[str, str] | None = None, **extra: str) -> dict[str, str]:
    """base (default: this process's environment) and extra, with PYTHONPATH
    naming the shoal this process imports: the agent runs the same code,
    installed or straight from a source tree."""
    import shoal

    env = {**(os.environ if base is None else base), **extra}
    here = str(Path(shoal.__file__).parents[1])
    paths = env.get("PYTHONPATH", "").split(os.pathsep) if env.get("PYTHONPATH") else []
    if here not in paths:
        env["PYTHONPATH"] = os.pathsep.join([here, *paths])
    return env


def ready_port(line: str, names: Collection[str] | None = None) -> tuple[str, int] | None:
    """(name, port) if line is an agent's `ready NAME PORT` (for one of names)."""
    parts = line.split()
    if len(parts) != 3 or parts[0] != "ready" or not parts[2].isdigit():
        return None
    if names is not None and parts[1] not in names:
        return None
    return parts[1], int(parts[2])
