"""Test hosts with real links: network namespaces on a bridge, each link
shaped with a tbf qdisc (netem is not in this kernel).

    hosts = NetnsHosts.create(4, rate="200mbit")   # root only
    argv = hosts.wrap(0, agent_argv([AgentNode("h1", hosts.address(0), 1995)]))
    hosts.cut(2)       # the link of host 2 goes down
    hosts.destroy()

Host i gets address 10.<net>.<sub>.(i+2)/24 on its eth0, whose peer is a
port of the bridge (the bridge itself is .1, where the client talks from).
Both directions of every host link are shaped to the same rate: tbf on the
host's eth0 (what it sends) and on its bridge port (what it receives). The
addresses are private to namespaces this module made; nothing is routed
beyond the bridge.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from shoal.deploy.isolate import Isolation
from shoal.errors import ConfigError

NET = 213  # 10.213.x.0/24


def _ip(*args: str, ns: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    argv = ["ip", *args] if ns is None else ["ip", "netns", "exec", ns, "ip", *args]
    return subprocess.run(argv, capture_output=True, text=True, check=check)


def _tc(dev: str, rate: str, ns: str | None = None) -> None:
    # A burst of ~1 ms at the rate but never below 64 KiB, so GSO-sized
    # packets fit; a 100 ms queue keeps TCP from seeing drops at line rate.
    argv = [
        "tc",
        "qdisc",
        "replace",
        "dev",
        dev,
        "root",
        "tbf",
        "rate",
        rate,
        "burst",
        "256kb",
        "latency",
        "100ms",
    ]
    if ns is not None:
        argv = ["ip", "netns", "exec", ns, *argv]
    r = subprocess.run(argv, capture_output=True, text=True)
    if r.returncode != 0:
        raise ConfigError(f"cannot shape {dev} to {rate}: {r.stderr.strip()}")


@dataclass
class NetnsHosts:
    prefix: str  # short, unique: names of namespaces, links and the bridge
    subnet: int  # third octet
    rate: str | None
    hosts: list[str] = field(default_factory=list)  # namespace names
    tmp_root: str = ""  # private /tmp directories of wrapped processes

    @property
    def bridge(self) -> str:
        return f"{self.prefix}br"

    @property
    def gateway(self) -> str:
        return f"10.{NET}.{self.subnet}.1"

    def address(self, i: int) -> str:
        return f"10.{NET}.{self.subnet}.{i + 2}"

    def port(self, i: int) -> str:
        return f"{self.prefix}p{i}"

    @classmethod
    def create(cls, n: int, *, rate: str | None = None, prefix: str | None = None) -> NetnsHosts:
        if os.geteuid() != 0:
            raise ConfigError("network-namespace hosts need root (ip netns, veth, tc)")
        if not 1 <= n <= 250:
            raise ConfigError("between 1 and 250 netns hosts")
        prefix = prefix or f"sh{secrets.token_hex(2)}"
        self = cls(prefix=prefix, subnet=_free_subnet(), rate=rate)
        try:
            _ip("link", "add", self.bridge, "type", "bridge")
            _ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
            for i in range(n):
                self._add_host(i)
        except (subprocess.CalledProcessError, ConfigError) as e:
            self.destroy()
            detail = e.stderr.strip() if isinstance(e, subprocess.CalledProcessError) else e
            raise ConfigError(f"cannot create netns hosts: {detail}") from e
        return self

    def _add_host(self, i: int) -> None:
        ns = f"{self.prefix}-h{i}"
        inner = f"{self.prefix}i{i}"
        _ip("netns", "add", ns)
        self.hosts.append(ns)
        _ip("link", "add", self.port(i), "type", "veth", "peer", "name", inner)
        _ip("link", "set", inner, "netns", ns)
        _ip("link", "set", inner, "name", "eth0", ns=ns)
        _ip("addr", "add", f"{self.address(i)}/24", "dev", "eth0", ns=ns)
        _ip("link", "set", "eth0", "up", ns=ns)
        _ip("link", "set", "lo", "up", ns=ns)
        _ip("link", "set", self.port(i), "master", self.bridge, "up")
        if self.rate:
            _tc("eth0", self.rate, ns=ns)
            _tc(self.port(i), self.rate)

    def wrap(self, i: int, argv: list[str], *, keep: list[Path] | None = None) -> list[str]:
        """argv run as host i (root only)."""
        return self.isolation(i, keep=keep).wrap(argv)

    def isolation(self, i: int, *, keep: list[Path] | None = None) -> Isolation:
        """Host i: its network namespace and a mount namespace of its own with
        a private /tmp (fresh per call). What the process needs under /tmp (a
        virtualenv, a source tree, the keep paths) stays visible: see
        deploy/isolate.py."""
        if not self.tmp_root:
            self.tmp_root = tempfile.mkdtemp(prefix=f"shoal-{self.prefix}-", dir="/var/tmp")
        priv = Path(tempfile.mkdtemp(prefix=f"h{i}-", dir=self.tmp_root))
        return Isolation(netns=self.hosts[i], tmp=priv, keep=tuple(keep or ()))

    def cut(self, i: int) -> None:
        """Take host i's link down (a partition or a pulled cable)."""
        _ip("link", "set", self.port(i), "down")

    def restore(self, i: int) -> None:
        _ip("link", "set", self.port(i), "up")

    def destroy(self) -> None:
        """Kill what runs in the hosts and remove every namespace and link.

        Each namespace is held open and its name removed first, so nothing can
        enter it any more (`ip netns exec` goes by name); then whatever is in
        it is killed, pass after pass, until nothing is (a process forking
        while it is killed leaves a child for the next pass)."""
        held: list[tuple[int, int]] = []
        for ns in self.hosts:
            with contextlib.suppress(OSError):
                fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
                st = os.fstat(fd)
                held.append((fd, st.st_ino))
        for i, ns in enumerate(self.hosts):
            _ip("link", "del", self.port(i), check=False)
            _ip("netns", "del", ns, check=False)
        _ip("link", "del", self.bridge, check=False)
        inodes = {ino for _, ino in held}
        try:
            for _ in range(100):
                pids = _pids_in(inodes)
                if not pids:
                    break
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                time.sleep(0.02)
        finally:
            for fd, _ in held:
                os.close(fd)
        self.hosts = []
        if self.tmp_root:
            shutil.rmtree(self.tmp_root, ignore_errors=True)
            self.tmp_root = ""

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)))

    @classmethod
    def load(cls, path: Path) -> NetnsHosts:
        return cls(**json.loads(path.read_text()))


def _pids_in(inodes: set[int]) -> list[int]:
    """Processes whose network namespace is one of these (nsfs inode numbers)."""
    found = []
    for d in os.listdir("/proc"):
        if d.isdigit() and int(d) != os.getpid():
            with contextlib.suppress(OSError):
                if os.stat(f"/proc/{d}/ns/net").st_ino in inodes:
                    found.append(int(d))
    return found


def _free_subnet() -> int:
    used = _ip("-4", "-o", "addr", "show").stdout
    for sub in range(1, 255):
        if f"10.{NET}.{sub}." not in used:
            return sub
    raise ConfigError(f"no free 10.{NET}.x.0/24 subnet for netns hosts")
