"""A cluster of real agents on this machine: for trying shoal, for tests, the
demo, the benchmark and the fleet controller's `local` provider.

    c = LocalCluster()                 # state under $SHOAL_HOME/cluster
    c.start(8)                         # node1..node8, one process each, TLS on
    c.addresses["node3"]               # "127.0.0.1:40123"
    c.stop("node3"); c.start_one("node3")
    c.down()

Each agent is a real process (`python -m shoal.cli.main agent ...`) in its own
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
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from shoal.core import tls
from shoal.core.config import DEFAULT_PORT, shoal_home
from shoal.errors import ClusterError, ConfigError

MARK = "# written by `shoal cluster up`; removed by `shoal cluster down`"
READY_TIMEOUT = 120.0  # seconds for every agent to print `ready` (1,024 nodes on 2 cores)
STOP_GRACE = 10.0  # seconds between SIGTERM and SIGKILL


@dataclass
class Proc:
    """One agent process and the nodes it hosts."""

    pid: int
    names: list[str]
    log: str
    create_time: float = 0.0  # guards against a recycled pid

    def alive(self) -> bool:
        import psutil

        try:
            p = psutil.Process(self.pid)
            return (
                abs(p.create_time() - self.create_time) < 1.0 and p.status() != psutil.STATUS_ZOMBIE
            )
        except psutil.Error:
            return False


@dataclass
class State:
    insecure: bool = False
    isolated: bool = False
    per_process: int = 1
    ports: dict[str, int] = field(default_factory=dict)
    procs: list[Proc] = field(default_factory=list)
    default_inventory: bool = False  # we wrote $SHOAL_HOME/inventory.toml
    hosts: dict[str, str] = field(default_factory=dict)  # node -> address (127.0.0.1)
    netns: dict[str, str] = field(default_factory=dict)  # node -> its network namespace
    controller: str | None = None  # agents register and heartbeat there


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
        try:
            raw = json.loads(self.state_file.read_text())
        except FileNotFoundError:
            return State()
        except (OSError, ValueError) as e:
            raise ConfigError(f"cluster state {self.state_file} is unreadable: {e}") from e
        try:
            procs = [Proc(**p) for p in raw.pop("procs", [])]
            known = {f.name for f in fields(State)}  # a newer shoal may have written more
            return State(**{k: v for k, v in raw.items() if k in known}, procs=procs)
        except (TypeError, AttributeError) as e:
            raise ConfigError(f"cluster state {self.state_file} is unreadable: {e}") from e

    def _save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self.state), indent=1))
        tmp.replace(self.state_file)

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
        for p in self.state.procs:
            if name in p.names:
                return p
        return None

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
        from shoal.deploy.netns import NetnsHosts

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
        from shoal.deploy.netns import NetnsHosts

        NetnsHosts.load(self._netns_file).cut(self._netns_index(name))

    def restore(self, name: str) -> None:
        from shoal.deploy.netns import NetnsHosts

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
        base = [sys.executable, "-m", "shoal.cli.main", "agent"]
        if len(names) == 1:
            nm = names[0]
            host = self.state.hosts.get(nm, "127.0.0.1")
            argv = [*base, "--name", nm, "--listen", f"{host}:{ports[nm]}"]
            argv += ["--insecure"] if self.state.insecure else ["--tls-dir", str(self.tls_dir)]
        else:
            spec = [
                {
                    "name": nm,
                    "host": "127.0.0.1",
                    "port": ports[nm],
                    "tls_dir": str(self.tls_dir),
                    "insecure": self.state.insecure,
                }
                for nm in names
            ]
            spec_file = log.with_suffix(".spec.json")
            spec_file.write_text(json.dumps(spec))
            argv = [*base, "--spec-file", str(spec_file)]
        if self.state.controller:
            argv += ["--controller", self.state.controller]
        if self.state.isolated:
            argv = self._isolate(names[0], argv)
        if names[0] in self.state.netns:
            argv = ["ip", "netns", "exec", self.state.netns[names[0]], *argv]
        return argv

    def _isolate(self, host: str, argv: list[str]) -> list[str]:
        """Wrap argv in a UTS + mount namespace: hostname HOST, a private /tmp.

        What the agent needs under /tmp (SHOAL_HOME of a test or the demo, a
        clone's virtualenv) stays visible: see deploy/isolate.py."""
        from shoal.deploy.isolate import private_tmp_script

        tmp = private_tmp_script(self.dir / host / "tmp", [self.home])
        script = f'hostname "$1" && {tmp} && shift && exec "$@"'
        return [
            "unshare",
            "--uts",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            "sh",
            host,
            *argv,
        ]

    async def _start_groups(self, groups: list[list[str]], ports: dict[str, int]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        started: list[tuple[Proc, Path]] = []
        for names in groups:
            log = self.dir / f"{names[0]}.log"
            argv = self._argv(names, ports, log)
            popen = self._spawn(argv, log)
            self._popen[popen.pid] = popen
            proc = Proc(popen.pid, list(names), str(log), _create_time(popen.pid))
            self.state.procs.append(proc)
            started.append((proc, log))
        results = await asyncio.gather(*(self._await_ready(p, log) for p, log in started))
        for got in results:
            self.state.ports.update(got)

    def _spawn(self, argv: list[str], log: Path) -> subprocess.Popen[bytes]:
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
            )

    async def _await_ready(self, proc: Proc, log: Path) -> dict[str, int]:
        """Read the log until every node of proc printed `ready NAME PORT`."""
        want = set(proc.names)
        got: dict[str, int] = {}
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            got.update(_ready_lines(log, want))
            if len(got) == len(want):
                return got
            popen = self._popen.get(proc.pid)
            if popen is not None and popen.poll() is not None:
                raise ClusterError(
                    f"agent process for {proc.names[0]} exited ({popen.returncode}):"
                    f" {_tail(log)} (log: {log})"
                )
            if time.monotonic() > deadline:
                raise ClusterError(f"agents {proc.names[0]}... not ready in time (log: {log})")
            await asyncio.sleep(0.05)

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

    def down(self) -> int:
        """Stop every agent (SIGTERM, then SIGKILL after a grace) and remove the
        state; idempotent. Returns the number of processes that were running."""
        running = [p for p in self.state.procs if p.alive()]
        self._terminate(self.state.procs)
        if self._netns_file.exists():
            from shoal.deploy.netns import NetnsHosts

            NetnsHosts.load(self._netns_file).destroy()
            self._netns_file.unlink()
        self._clean_files()
        self.state = State()
        return len(running)

    def _terminate(self, procs: list[Proc], sig: int = signal.SIGTERM) -> None:
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
            popen = self._popen.pop(p.pid, None)
            if popen is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    popen.wait(timeout=1)

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


def _create_time(pid: int) -> float:
    import psutil

    try:
        return float(psutil.Process(pid).create_time())
    except psutil.Error:
        return 0.0


def _ready_lines(log: Path, want: set[str]) -> dict[str, int]:
    got = {}
    for line in log.read_text(errors="replace").splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "ready" and parts[1] in want:
            got[parts[1]] = int(parts[2])
    return got


def _tail(log: Path, n: int = 3) -> str:
    try:
        lines = log.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(lines[-n:])
