"""The host's cgroups as the agent may use them: detected once, sandboxes made
with their limits, and what a crashed agent left behind swept at start.

v1 (controllers on their own hierarchies) is what this project's machines
and CI have, and is tested against the real kernel. v2 follows the same
interface: the agent moves itself into a leaf (``agent-INSTANCE``) so that
its own cgroup may enable controllers for the sandboxes beside it.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
from pathlib import Path

from shoal.agent.sandbox import (
    V1_CONTROLLERS,
    Request,
    Sandbox,
    SandboxError,
    Scratches,
    _alive,
    _instance,
    _mounts,
    _own_paths,
    _read,
    _under,
    _write,
    format_list,
    parse_list,
)
from shoal.core.config import shoal_home

log = logging.getLogger("shoal.agent.sandbox")

V2_CONTROLLERS = ("cpuset", "cpu", "memory", "pids")
# v1 hierarchies every sandbox joins (kill, CPU time, peak memory); the others
# only when a limit asks for them: joining a hierarchy is a kernel write each
ALWAYS_V1 = ("freezer", "cpuacct", "memory")
POOL = 16  # emptied limit-free v1 sandboxes kept for reuse (mkdir/rmdir cost)
NEEDED = {"memory": "--mem", "cpuset": "--cpus/--mems", "cpu": "--cpu-quota", "pids": "--pids"}


class Host:
    def __init__(
        self, version: int, bases: dict[str, Path], why: str = "", state: Path | None = None
    ) -> None:
        self.version = version  # 2, 1, or 0: no cgroups (process-group kill only)
        self.bases = bases  # controller ("" for v2) -> where sandboxes are made
        self.why = why  # what is missing, said once at start
        self.instance = _instance()
        self._seq = itertools.count(1)
        self._pool: list[Sandbox] = []
        # state: the agent's own directory ($SHOAL_HOME/agent), where scratch is recorded
        self.scratches = Scratches((state or shoal_home() / "agent") / "scratch", self.instance)

    @classmethod
    def none(cls, why: str, state: Path | None = None) -> Host:
        return cls(0, {}, why, state)

    def controllers(self) -> list[str]:
        """The controllers this agent's sandboxes may use."""
        return sorted(c for c in self.bases if c)

    def allowed(self) -> tuple[str, str]:
        """The CPUs and memory nodes a --cpus or --mems list may name: those of
        the cpuset sandboxes are made in, else this process's affinity."""
        base = self.bases.get("cpuset")
        if base is not None:
            v2 = self.version == 2
            with contextlib.suppress(OSError):
                return (
                    _read(base / ("cpuset.cpus.effective" if v2 else "cpuset.effective_cpus")),
                    _read(base / ("cpuset.mems.effective" if v2 else "cpuset.effective_mems")),
                )
        try:
            mems = _read(Path("/sys/devices/system/node/has_memory"))
        except OSError:
            mems = ""
        return format_list(os.sched_getaffinity(0)), mems

    @classmethod
    def detect(cls, state: Path | None = None) -> Host:
        try:
            v1, v2 = _mounts()
            own = _own_paths()
        except OSError as e:
            return cls.none(f"cannot read the process's cgroups: {e}", state)
        if v2 is not None and "" in own:
            host = cls._v2(v2.point / own[""].lstrip("/"), state)
            if host is not None:
                return host
        if not v1:
            return cls.none("no cgroup hierarchy is mounted", state)
        bases: dict[str, Path] = {}
        missing = []
        for m in v1:
            path = own.get(m.controllers[0])
            if path is None:
                continue
            base = _under(m, path) / "shoal"
            try:
                base.mkdir(exist_ok=True)
                if "cpuset" in m.controllers:  # v1 asks for both before any task joins
                    for f in ("cpuset.cpus", "cpuset.mems"):
                        if not _read(base / f):
                            _write(base / f, _read(base.parent / f))
            except OSError as e:
                missing.append(f"{','.join(m.controllers)} ({e.strerror})")
                continue
            for c in m.controllers:
                bases[c] = base
        if not bases:
            return cls.none("no cgroup can be made here: " + "; ".join(missing), state)
        absent = [c for c in V1_CONTROLLERS if c not in bases]
        why = f"cgroup v1 without {', '.join(absent)}" if absent else ""
        return cls(1, bases, why, state)

    @classmethod
    def _v2(cls, own: Path, state: Path | None) -> Host | None:
        try:
            have = _read(own / "cgroup.controllers").split()
        except OSError:
            return None
        usable = [c for c in V2_CONTROLLERS if c in have]
        if not usable:
            return None  # an empty unified hierarchy beside v1 controllers
        inst = _instance()
        try:
            leaf = own / f"agent-{inst}"
            leaf.mkdir(exist_ok=True)
            _write(leaf / "cgroup.procs", str(os.getpid()))
            _write(own / "cgroup.subtree_control", " ".join(f"+{c}" for c in usable))
            base = own / "shoal"
            base.mkdir(exist_ok=True)
            _write(base / "cgroup.subtree_control", " ".join(f"+{c}" for c in usable))
        except OSError as e:
            log.warning("cgroup v2 at %s is not delegated to us (%s)", own, e.strerror)
            return None
        absent = [c for c in V2_CONTROLLERS if c not in usable]
        why = f"without {absent}" if absent else ""
        return cls(2, {c: base for c in usable} | {"": base}, why, state)

    def describe(self) -> str:
        if self.version == 0:
            return f"no sandboxes ({self.why}): commands are killed by process group only"
        return f"sandboxes on cgroup v{self.version}" + (f" ({self.why})" if self.why else "")

    # -- making one ------------------------------------------------------------

    def sandbox(self, req: Request) -> Sandbox | None:
        """A sandbox for one command, its limits set; None when this host has no
        cgroups and nothing was asked. SandboxError when a request cannot be met."""
        if self.version == 0:
            if req.any_limit():
                raise SandboxError(f"this node cannot enforce limits: {self.why}")
            return None
        for ctrl, flag in NEEDED.items():
            if _asks(req, ctrl) and ctrl not in self.bases:
                raise SandboxError(f"{flag}: this node has no {ctrl} controller ({self.why})")
        if self._pool and not req.any_limit():
            return self._pool.pop()
        name = f"{self.instance}-{next(self._seq)}"
        if self.version == 2:
            dirs = {"": self.bases[""] / name}
        else:
            wanted = {c for c in ALWAYS_V1} | {c for c in NEEDED if _asks(req, c)}
            dirs = {c: b / name for c, b in self.bases.items() if c in wanted}
        made: list[Path] = []
        try:
            for d in dict.fromkeys(dirs.values()):
                d.mkdir()
                made.append(d)
            box = Sandbox(dirs, self.version, limited=req.any_limit())
            self._limit(box, req)
        except (SandboxError, OSError) as e:
            for d in reversed(made):
                with contextlib.suppress(OSError):
                    d.rmdir()
            if isinstance(e, SandboxError):
                raise
            raise SandboxError(f"cannot make a sandbox: {e}") from e
        return box

    def release(self, box: Sandbox) -> None:
        """An emptied sandbox back: kept for the next command when it carries no
        limit and its counters could be reset (v1), else removed."""
        if self.version == 1 and not box.limited and len(self._pool) < POOL:
            try:
                for ctrl, f in (
                    ("cpuacct", "cpuacct.usage"),
                    ("memory", "memory.max_usage_in_bytes"),
                ):
                    d = box.by_controller.get(ctrl)
                    if d is not None:
                        _write(d / f, "0")
            except OSError:
                box.remove()
                return
            self._pool.append(box)
            return
        box.remove()

    def close(self) -> None:
        """Agent stop: remove the kept sandboxes and any scratch left."""
        pool, self._pool = self._pool, []
        for box in pool:
            box.remove()
        self.scratches.close()

    def limit(self, box: Sandbox, req: Request) -> None:
        """Give a live sandbox new limits (a faas spare becoming a container,
        agent/spares.py). SandboxError when they cannot be set."""
        try:
            self._limit(box, req)
        except OSError as e:
            raise SandboxError(f"cannot set the sandbox's limits: {e}") from e
        box.limited = box.limited or req.any_limit()

    def _limit(self, box: Sandbox, req: Request) -> None:
        v2 = self.version == 2
        cs = box.by_controller.get("" if v2 else "cpuset")
        if cs is not None and ((v2 and "cpuset" in self.bases) or not v2):
            pfx = "cpuset.cpus.effective" if v2 else "cpuset.effective_cpus"
            mfx = "cpuset.mems.effective" if v2 else "cpuset.effective_mems"
            parent = cs.parent
            for want, have_file, target, what in (
                (req.cpus, pfx, "cpuset.cpus", "CPUs"),
                (req.mems, mfx, "cpuset.mems", "memory nodes"),
            ):
                have = _read(parent / have_file) if (parent / have_file).exists() else ""
                if want:
                    try:
                        asked = parse_list(want)
                    except ValueError:
                        raise SandboxError(f"{what} {want!r} is not a list like 0-3,8") from None
                    if not asked or not asked <= parse_list(have):
                        raise SandboxError(f"{what} {want} not on this node: it has {have}")
                    _write(cs / target, want)
                elif not v2:
                    _write(cs / target, have)
        if req.memory:
            mem = box.by_controller["" if v2 else "memory"]
            if v2:
                _write(mem / "memory.max", str(req.memory))
                _write(mem / "memory.swap.max", "0")
            else:
                lim, sw = mem / "memory.limit_in_bytes", mem / "memory.memsw.limit_in_bytes"
                order = [lim]
                if sw.exists():  # memsw may never be below the limit: raise it first, lower it last
                    order = [lim, sw] if req.memory < int(_read(lim) or 0) else [sw, lim]
                for f in order:
                    _write(f, str(req.memory))
                _write(mem / "memory.swappiness", "0")
        if req.cpu_quota:
            cpu = box.by_controller["" if v2 else "cpu"]
            quota = max(1000, int(req.cpu_quota * 100_000))
            if v2:
                _write(cpu / "cpu.max", f"{quota} 100000")
            else:
                _write(cpu / "cpu.cfs_period_us", "100000")
                _write(cpu / "cpu.cfs_quota_us", str(quota))
        if req.pids:
            _write(box.by_controller["" if v2 else "pids"] / "pids.max", str(req.pids))

    # -- after a crash ---------------------------------------------------------

    def sweep(self) -> tuple[int, int]:
        """Remove sandboxes of agent processes that are gone (and kill what is
        left in them): (sandboxes removed, processes killed)."""
        stale: dict[str, dict[str, Path]] = {}  # name -> controller -> its directory
        for ctrl, base in self.bases.items():
            for d in sorted(base.iterdir()) if base.is_dir() else []:
                inst = d.name.rsplit("-", 1)[0]
                if d.is_dir() and inst != self.instance and not _alive(inst):
                    stale.setdefault(d.name, {})[ctrl] = d
        killed = 0
        for dirs in stale.values():
            box = Sandbox(dirs, self.version, limited=False)
            for _ in range(100):  # SIGKILLed processes fork no more: this converges
                if not box.members():
                    break
                killed += box.kill_now()
                os.sched_yield()
            box.remove()
        return len(stale), killed


def _asks(req: Request, controller: str) -> bool:
    return {
        "memory": req.memory > 0,
        "cpuset": bool(req.cpus or req.mems),
        "cpu": req.cpu_quota > 0,
        "pids": req.pids > 0,
    }[controller]
