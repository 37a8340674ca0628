"""Sandboxes: every command the agent starts lives in a cgroup of its own.

``Host.detect()`` finds, once at start, what this agent may use: cgroup v2
(the unified hierarchy with controllers it can enable) or v1 (controllers on
their own hierarchies), else nothing (not root, no delegation, a read-only
cgroupfs), when commands still run with process-group kill as before and a
limit that cannot be enforced is refused, never ignored.

A sandbox is made under the agent's own cgroup, in ``shoal/``, named after
the agent process (pid and start time) so that after a crash the next agent
finds and removes what the dead one left (``Host.sweep``). The command's
first process puts itself into the sandbox before it runs the command (a
one-line /bin/sh prologue), so nothing it forks is ever outside. The end, in
every way it can come (exit, time limit, cancel, agent stop), is the same:
freeze, SIGKILL every member, thaw, wait until empty, read the accounting,
remove.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import logging
import os
import re
import signal
import stat
from dataclasses import dataclass
from pathlib import Path

from shoal.errors import SandboxError as SandboxError  # re-exported

log = logging.getLogger("shoal.agent.sandbox")

V1_CONTROLLERS = ("cpuset", "cpu", "cpuacct", "memory", "pids", "freezer")
# $0 is the command; the rest are cgroup.procs files. The shell puts itself in
# each, then runs the command itself (an exec of a second shell costs a third
# of a command's start): the command sees no arguments, and $0 is its text.
PROLOGUE = 'for f; do echo $$ > "$f" || exit 125; done; set --; eval "$0"'
EMPTY_WAIT = 10.0  # seconds a killed sandbox may take to empty


@dataclass(frozen=True)
class Request:
    cpus: str = ""  # cpuset list, e.g. "0-3,8"
    mems: str = ""  # memory nodes
    memory: int = 0  # bytes; swap is off for the sandbox
    cpu_quota: float = 0.0  # cores
    pids: int = 0  # most processes at once
    scratch: str = ""  # a directory to make the command's private scratch in

    def any_limit(self) -> bool:
        return bool(self.cpus or self.mems or self.memory or self.cpu_quota or self.pids)


@dataclass
class Usage:
    cpu_ns: int = 0  # user + system of every process that ran in it
    peak_memory: int = 0  # bytes, of the whole tree
    oom: bool = False  # the memory limit killed something
    oom_kills: int = 0  # processes it killed (a long-lived sandbox compares counts)
    memory: int = 0  # bytes charged now


def parse_list(text: str) -> set[int]:
    """A kernel CPU/node list ("0-3,8") as a set; ValueError when malformed."""
    out: set[int] = set()
    for part in text.strip().split(","):
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        a, b = int(lo), int(hi) if sep else int(lo)
        if a < 0 or b < a:
            raise ValueError(part)
        out.update(range(a, b + 1))
    return out


def format_list(items: set[int]) -> str:
    """A set as a kernel list: {0, 1, 2, 3, 8} -> "0-3,8"."""
    out: list[str] = []
    run: list[int] = []
    for i in sorted(items):
        if run and i != run[-1] + 1:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
            run = []
        run.append(i)
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(out)


def _read(p: Path) -> str:
    return p.read_text().strip()


def _write(p: Path, value: str) -> None:
    with p.open("w") as f:
        f.write(value)


def _start_time(pid: int) -> str:
    """A process's start time in clock ticks (field 22 of /proc/PID/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[19]


def _instance() -> str:
    return f"{os.getpid()}.{_start_time(os.getpid())}"


def _alive(instance: str) -> bool:
    pid, _, start = instance.partition(".")
    try:
        return _start_time(int(pid)) == start
    except (OSError, ValueError, IndexError):
        return False


class Sandbox:
    """One command's cgroup: a directory per v1 hierarchy, or one v2 directory.

    ``dirs`` maps each controller to its directory (co-mounted controllers
    share one); v2 has the single key "".
    """

    def __init__(self, dirs: dict[str, Path], version: int, limited: bool) -> None:
        self.by_controller = dirs
        self.dirs = list(dict.fromkeys(dirs.values()))
        self.version = version
        self.limited = limited  # a limit was set (a memory one: failcnt means OOM)

    def argv(self, command: str) -> list[str]:
        return ["/bin/sh", "-c", PROLOGUE, command, *(str(d / "cgroup.procs") for d in self.dirs)]

    def _dir(self, controller: str) -> Path | None:
        return self.by_controller.get("" if self.version == 2 else controller)

    def members(self) -> set[int]:
        pids: set[int] = set()
        for d in self.dirs:
            with contextlib.suppress(OSError, ValueError):
                pids.update(int(x) for x in _read(d / "cgroup.procs").split())
        return pids

    def kill_now(self) -> int:
        """One pass of kill without waiting (agent shutdown, the start's sweep);
        how many processes were signalled."""
        if self.version == 2:
            with contextlib.suppress(OSError):
                _write(self.dirs[0] / "cgroup.kill", "1")
        n = 0
        for pid in self.members():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                n += 1
        return n

    async def kill(self) -> None:
        """Kill every member and wait until none is left."""
        if self.version == 2:
            with contextlib.suppress(OSError):
                _write(self.dirs[0] / "cgroup.kill", "1")
        freezer = self._dir("freezer") if self.version == 1 else None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + EMPTY_WAIT
        while members := self.members():
            if freezer is not None:  # nothing forks between the read and the kill
                with contextlib.suppress(OSError):
                    _write(freezer / "freezer.state", "FROZEN")
                members = self.members()
            for pid in members:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            if freezer is not None:
                with contextlib.suppress(OSError):
                    _write(freezer / "freezer.state", "THAWED")
            if loop.time() > deadline:
                log.error("sandbox %s still has %s after SIGKILL", self.dirs[0], sorted(members))
                return
            await asyncio.sleep(0.01)

    def usage(self) -> Usage:
        u = Usage()
        with contextlib.suppress(OSError, ValueError):
            if self.version == 2:
                d = self.dirs[0]
                u.cpu_ns = int(_keyed(d / "cpu.stat").get("usage_usec", 0)) * 1000
                if (d / "memory.peak").exists():
                    u.peak_memory = int(_read(d / "memory.peak"))
                u.oom_kills = int(_keyed(d / "memory.events").get("oom_kill", 0))
                u.oom = u.oom_kills > 0
                u.memory = int(_read(d / "memory.current"))
                return u
            if (acct := self._dir("cpuacct")) is not None:
                u.cpu_ns = int(_read(acct / "cpuacct.usage"))
            if (mem := self._dir("memory")) is not None:
                u.peak_memory = int(_read(mem / "memory.max_usage_in_bytes"))
                u.oom_kills = int(_keyed(mem / "memory.oom_control").get("oom_kill", 0))
                hit = self.limited and int(_read(mem / "memory.failcnt")) > 0
                u.oom = u.oom_kills > 0 or hit
                u.memory = int(_read(mem / "memory.usage_in_bytes"))
        return u

    def remove(self) -> None:
        for d in self.dirs:
            try:
                d.rmdir()
            except FileNotFoundError:
                pass
            except OSError as e:  # still busy: the next agent start sweeps it
                log.warning("cannot remove sandbox %s: %s", d, e.strerror)


def _keyed(p: Path) -> dict[str, str]:
    """A cgroup file of "key value" lines."""
    return dict(line.split(None, 1) for line in _read(p).splitlines() if line.strip())


@dataclass
class _Mount:
    point: Path
    root: str  # the hierarchy's path at the mount point
    controllers: list[str]  # v1; empty for v2


def _mounts() -> tuple[list[_Mount], _Mount | None]:
    v1: list[_Mount] = []
    v2 = None
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        f, r = left.split(), right.split()
        if len(f) < 5 or len(r) < 3:
            continue
        point = Path(f[4].replace("\\040", " "))
        if r[0] == "cgroup":
            ctrls = [c for c in r[2].split(",") if c in V1_CONTROLLERS]
            if ctrls:
                v1.append(_Mount(point, f[3], ctrls))
        elif r[0] == "cgroup2":
            v2 = _Mount(point, f[3], [])
    return v1, v2


def _own_paths() -> dict[str, str]:
    """This process's cgroup per v1 controller, and "" for v2."""
    out: dict[str, str] = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, ctrls, path = line.split(":", 2)
        for c in ctrls.split(",") if ctrls else [""]:
            out[c] = path
    return out


def _under(m: _Mount, own: str) -> Path:
    rel = own[len(m.root) :] if m.root != "/" and own.startswith(m.root) else own
    return m.point / rel.lstrip("/")


SCRATCH_PREFIX = "shoal-scratch-"
# shoal-scratch-PID.STARTTIME-N: only names of this shape are ever removed
_SCRATCH_NAME = re.compile(r"^shoal-scratch-(\d+\.\d+)-\d+$")


class Scratches:
    """Private scratch directories (--scratch DIR): DIR/shoal-scratch-INSTANCE-N.

    Each one made is recorded in ``ledger`` (a symlink of the same name to it)
    until it is removed, so that the next agent after a crash knows where the
    dead one's scratch lies: DIR is the caller's, anywhere.
    """

    def __init__(self, ledger: Path, instance: str) -> None:
        self.ledger = ledger
        self.instance = instance
        self._seq = itertools.count(1)
        self.live: set[Path] = set()

    def make(self, parent: str) -> Path:
        """A fresh directory (0700) under parent; SandboxError saying why not."""
        where = Path(parent)
        if not where.is_absolute():
            raise SandboxError(f"--scratch {parent}: not an absolute path")
        path = where / f"{SCRATCH_PREFIX}{self.instance}-{next(self._seq)}"
        link = self.ledger / path.name
        try:
            self.ledger.mkdir(parents=True, exist_ok=True)
            os.symlink(path, link)
        except OSError as e:
            raise SandboxError(f"--scratch: cannot record it in {self.ledger}: {e.strerror}") from e
        try:
            path.mkdir(mode=0o700)
        except OSError as e:
            link.unlink(missing_ok=True)
            why = {
                errno.ENOENT: "does not exist",
                errno.ENOTDIR: "is not a directory",
                errno.EROFS: "is read-only",
                errno.EACCES: "is not writable",
                errno.EPERM: "is not writable",
            }.get(e.errno or 0, e.strerror)
            raise SandboxError(f"--scratch {parent} {why} on this node") from None
        self.live.add(path)
        return path

    def remove(self, path: Path) -> tuple[int, int]:
        """Remove one scratch directory and its record: (files, bytes) freed."""
        freed = _remove_tree(path)
        (self.ledger / path.name).unlink(missing_ok=True)
        self.live.discard(path)
        return freed

    def close(self) -> None:
        """Agent stop: what a command's own end did not remove."""
        for path in list(self.live):
            self.remove(path)

    def sweep(self) -> tuple[int, int, int]:
        """Remove the scratch of agent processes that are gone: (directories,
        files, bytes) freed."""
        dirs = files = size = 0
        for link in sorted(self.ledger.iterdir()) if self.ledger.is_dir() else []:
            m = _SCRATCH_NAME.match(link.name)
            if m is None or m.group(1) == self.instance or _alive(m.group(1)):
                continue
            with contextlib.suppress(OSError):
                target = Path(os.readlink(link))
                # only a directory shoal made: the record's own name, not a symlink
                if target.name == link.name and stat.S_ISDIR(target.lstat().st_mode):
                    f, b = _remove_tree(target)
                    dirs, files, size = dirs + 1, files + f, size + b
            link.unlink(missing_ok=True)
        return dirs, files, size


def _remove_tree(top: Path) -> tuple[int, int]:
    """rm -rf that follows no symlink and stays on top's filesystem (a mount a
    command left inside is not emptied); (files, bytes) removed."""
    files = size = 0
    try:
        dev = top.lstat().st_dev
    except FileNotFoundError:
        return 0, 0

    def walk(d: Path) -> None:
        nonlocal files, size
        with contextlib.suppress(OSError), os.scandir(d) as it:
            for e in list(it):
                with contextlib.suppress(OSError):
                    st = e.stat(follow_symlinks=False)
                    if stat.S_ISDIR(st.st_mode):
                        if st.st_dev != dev:
                            log.warning("scratch %s: %s is another mount, left", top, e.path)
                            continue
                        walk(Path(e.path))
                        os.rmdir(e.path)
                    else:
                        os.unlink(e.path)
                        files, size = files + 1, size + st.st_blocks * 512

    walk(top)
    try:
        top.rmdir()
    except FileNotFoundError:
        pass
    except OSError as e:
        log.warning("cannot remove scratch %s: %s", top, e.strerror)
    return files, size
