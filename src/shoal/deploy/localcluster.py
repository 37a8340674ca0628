"""A cluster of real agents on this machine: for trying shoal (a fleet
controller too, with controller=URL), for tests, the demo and the benchmarks.

    c = LocalCluster()                 # state under $SHOAL_HOME/cluster
    c.start(8)                         # node1..node8, one process each, TLS on
    c.addresses["node3"]               # "127.0.0.1:40123"
    c.stop("node3"); c.start_one("node3")
    c.down()

Each agent is a real process (`shoal agent`, see deploy/launch.py) in its own
session, logging to $SHOAL_HOME/cluster/PROC.log; pids are kept in
state.json so that another shoal command (`shoal cluster down`) finds them.
With per_process=K, K agents share one process (--spec-file), each with its
own server and port, so 1,024 nodes fit on one machine.

As root, every agent process runs in its own UTS namespace (hostname = node
name) and mount namespace (/tmp = $SHOAL_HOME/cluster/NAME/tmp), so nodes
behave like separate hosts. With per_process=K the K nodes of a process share
that process's namespaces: its hostname is its first node's name. Not root:
every node shares this machine's hostname and /tmp (`isolation_note`).

With netns=True (root), the nodes are real hosts on a network: each agent
runs in a network namespace of its own on a private bridge (deploy/netns.py),
with its own address (10.213.x.y, listening on the default port 1995), its
link optionally shaped to `rate` by tbf, plus its own UTS and mount
namespaces. `cut(name)`/`restore(name)` take its link down and up;
`down()` removes the namespaces, links and bridge.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
from pathlib import Path

from shoal.core import tls
from shoal.core.config import DEFAULT_PORT, shoal_home
from shoal.deploy import processes
from shoal.deploy.isolate import Isolation
from shoal.deploy.launch import AgentNode, agent_argv, agent_env
from shoal.deploy.netns import NetnsHosts
from shoal.deploy.state import Proc, State
from shoal.errors import ClusterError, ConfigError

MARK = "# written by `shoal cluster up`; removed by `shoal cluster down`"


def is_root() -> bool:
    return os.geteuid() == 0


def isolation_note(per_process: int = 1) -> str:
    if not is_root():
        return (
            "not root: the local nodes share this machine's hostname and /tmp"
            " (as root each gets its own UTS and mount namespace)"
        )
    if per_process > 1:
        return (
            f"--per-process {per_process}: the nodes of one process share its hostname"
            " (its first node's name) and its private /tmp"
        )
    return ""


class LocalCluster:
    def __init__(self, home: Path | None = None) -> None:
        self.home = home or shoal_home()
        self.dir = self.home / "cluster"
        self.tls_dir = self.home / "tls"
        self.state_file = self.dir / "state.json"
        self._popen: dict[int, subprocess.Popen[bytes]] = {}  # our children, to reap
        self.state = self._load()

    # ---- state -------------------------------------------------------------
    def _load(self) -> State:
        return State.load(self.state_file)

    def _save(self) -> None:
        self.state.save(self.state_file)

    @property
    def names(self) -> list[str]:
        return list(self.state.ports)

    @property
    def addresses(self) -> dict[str, str]:
        return {
            n: f"{self.state.hosts.get(n, '127.0.0.1')}:{p}" for n, p in self.state.ports.items()
        }

    @property
    def inventory_path(self) -> Path:
        return self.dir / "inventory.toml"

    @property
    def default_inventory(self) -> Path:
        return self.home / "inventory.toml"

    def proc_of(self, name: str) -> Proc | None:
        return self.state.proc_of(name)

    def is_up(self) -> bool:
        return any(p.alive() for p in self.state.procs)

    def status(self) -> list[dict[str, object]]:
        """One row per node: name, address, pid, up."""
        rows: list[dict[str, object]] = []
        for name in self.state.ports:
            p = self.proc_of(name)
            rows.append(
                {
                    "name": name,
                    "address": self.addresses[name],
                    "pid": p.pid if p else None,
                    "up": bool(p and p.alive()),
                }
            )
        return rows

    # ---- start ---------------------------------------------------------------
    def start(
        self,
        n: int | list[str],
        *,
        per_process: int = 1,
        base_port: int | None = None,
        insecure: bool = False,
        netns: bool = False,
        rate: str | None = None,
        controller: str | None = None,
    ) -> list[str]:
        """Start n agents named node1..nodeN (or the given names); return the names.
        netns: each node a network namespace on a bridge, its link shaped to rate.
        controller: a fleet controller URL the agents register with.
        Raises ClusterError when a cluster is already up in this SHOAL_HOME."""
        if self.is_up():
            raise ClusterError(
                f"a local cluster is already up in {self.home} ({len(self.names)} nodes);"
                " run `shoal cluster down` first"
            )
        names = [f"node{i}" for i in range(1, n + 1)] if isinstance(n, int) else list(n)
        if not names:
            raise ConfigError("a cluster needs at least one node")
        if per_process < 1:
            raise ConfigError("--per-process must be at least 1")
        self.down()  # leftovers of a cluster that died: files, namespaces
        if rate and not netns:
            raise ConfigError("--rate shapes netns links: it needs --netns")
        self.state = State(
            insecure=insecure, isolated=is_root(), per_process=per_process, controller=controller
        )
        try:
            if netns:
                self._make_netns(names, per_process, rate)
            if not insecure:
                self._credentials(names)
        except BaseException:
            self.down()
            raise
        if netns:  # one host per namespace: every agent can have the default port
            ports = {nm: base_port or DEFAULT_PORT for nm in names}
        else:  # 0: the agent binds a free port and prints it (no pick-then-bind race)
            ports = {nm: (base_port + i if base_port else 0) for i, nm in enumerate(names)}
        groups = [names[i : i + per_process] for i in range(0, len(names), per_process)]
        try:
            asyncio.run(self._start_groups(groups, ports))
        except BaseException:
            self.down()
            raise
        self._write_inventory()
        self._save()
        return names

    def start_one(self, name: str) -> None:
        """(Re)start one known node, alone in a new process, on its old port."""
        if name not in self.state.ports:
            raise ConfigError(f"{name} is not a node of this cluster")
        old = self.proc_of(name)
        if old is not None and old.alive():
            raise ClusterError(f"{name} is already running (pid {old.pid})")
        if old is not None:
            old.names.remove(name)
            if not old.names:
                self.state.procs.remove(old)
        asyncio.run(self._start_groups([[name]], {name: self.state.ports[name]}))
        self._save()

    def _make_netns(self, names: list[str], per_process: int, rate: str | None) -> None:
        if not is_root():
            raise ConfigError("--netns needs root (network namespaces, veth links, tc)")
        if per_process != 1:
            raise ConfigError("--netns runs one agent per namespace: no --per-process")
        self.dir.mkdir(parents=True, exist_ok=True)
        hosts = NetnsHosts.create(len(names), rate=rate)
        hosts.save(self._netns_file)  # before anything else can fail: down() finds it
        for i, nm in enumerate(names):
            self.state.hosts[nm] = hosts.address(i)
            self.state.netns[nm] = hosts.hosts[i]
        self._save()

    @property
    def _netns_file(self) -> Path:
        return self.dir / "netns.json"

    def _netns_index(self, name: str) -> int:
        if name not in self.state.netns:
            raise ConfigError(f"{name} is not a netns node of this cluster")
        return list(self.state.netns).index(name)

    def cut(self, name: str) -> None:
        """Take a netns node's link down: a partition or a pulled cable."""
        NetnsHosts.load(self._netns_file).cut(self._netns_index(name))

    def restore(self, name: str) -> None:
        NetnsHosts.load(self._netns_file).restore(self._netns_index(name))

    def _credentials(self, names: list[str]) -> None:
        if not (self.tls_dir / "ca.crt").exists():
            tls.init_ca(self.tls_dir)
        if not (self.tls_dir / f"{tls.CLIENT_NAME}.crt").exists():
            tls.issue(self.tls_dir, tls.CLIENT_NAME, role=tls.OPERATOR)
        for nm in names:
            if nm in self.state.hosts:  # netns: name this run's address too
                tls.issue(self.tls_dir, nm, sans=["127.0.0.1", self.state.hosts[nm]])
            elif not (self.tls_dir / f"{nm}.crt").exists():
                tls.issue(self.tls_dir, nm, sans=["127.0.0.1"])

    def _argv(self, names: list[str], ports: dict[str, int], log: Path) -> list[str]:
        insecure, tls_dir = self.state.insecure, self.tls_dir
        nodes = [
            AgentNode(nm, self.state.hosts.get(nm, "127.0.0.1"), ports[nm], tls_dir, insecure)
            for nm in names
        ]
        return agent_argv(
            nodes,
            spec_file=log.with_suffix(".spec.json"),
            controller=self.state.controller,
            isolation=self._isolation(names[0]),
        )

    def _isolation(self, host: str) -> Isolation:
        """As root, a UTS + mount namespace: hostname HOST, a private /tmp
        (what the agent needs under /tmp stays visible: see deploy/isolate.py);
        a netns node also in its network namespace."""
        if not self.state.isolated:
            return Isolation(netns=self.state.netns.get(host))
        tmp = self.dir / host / "tmp"
        return Isolation(self.state.netns.get(host), host, tmp, (self.home,))

    async def _start_groups(self, groups: list[list[str]], ports: dict[str, int]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        started: list[Proc] = []
        for names in groups:
            log = self.dir / f"{names[0]}.log"
            # a local cluster is never a cloud host: its agents ask no metadata service
            env = agent_env(SHOAL_METADATA="off")
            popen = processes.spawn(self._argv(names, ports, log), log, env)
            self._popen[popen.pid] = popen
            proc = Proc(popen.pid, list(names), str(log), processes.create_time(popen.pid))
            self.state.procs.append(proc)
            started.append(proc)
        results = await asyncio.gather(
            *(processes.await_ready(p, self._popen.get(p.pid)) for p in started)
        )
        for got in results:
            self.state.ports.update(got)

    def _write_inventory(self) -> None:
        lines = [MARK, "[nodes]"] + [f'{n} = "{a}"' for n, a in self.addresses.items()]
        text = "\n".join(lines) + "\n"
        self.inventory_path.write_text(text)
        d = self.default_inventory
        if not d.exists() or d.read_text(errors="replace").startswith(MARK):
            d.write_text(text)
            self.state.default_inventory = True

    # ---- stop ----------------------------------------------------------------
    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        """Stop the process hosting name (with per_process > 1, its K nodes)."""
        p = self.proc_of(name)
        if p is None:
            raise ConfigError(f"{name} is not a node of this cluster")
        self._terminate([p], sig)
        self._save()

    def kill(self, name: str) -> None:
        """SIGKILL the process hosting name: a node that dies without a word."""
        self.stop(name, signal.SIGKILL)

    def down(self, keep: bool = False) -> int:
        """Stop every agent (SIGTERM, then SIGKILL after a grace) and remove the
        state and each node's private /tmp (keep: leave those); idempotent.
        Returns the number of processes that were running."""
        running = [p for p in self.state.procs if p.alive()]
        self._terminate(self.state.procs)
        if self._netns_file.exists():
            NetnsHosts.load(self._netns_file).destroy()
            self._netns_file.unlink()
        self._clean_files()
        if not keep and self.dir.exists():
            for tmp in self.dir.glob("*/tmp"):
                shutil.rmtree(tmp.parent, ignore_errors=True)
        self.state = State()
        return len(running)

    def _terminate(self, procs: list[Proc], sig: int = signal.SIGTERM) -> None:
        processes.terminate(procs, sig, self._popen)

    def _clean_files(self) -> None:
        if self.state.default_inventory or (
            self.default_inventory.exists()
            and self.default_inventory.read_text(errors="replace").startswith(MARK)
        ):
            self.default_inventory.unlink(missing_ok=True)
        for f in (self.state_file, self.inventory_path):
            f.unlink(missing_ok=True)
        if self.dir.exists():
            for f in self.dir.glob("*.spec.json"):
                f.unlink()
