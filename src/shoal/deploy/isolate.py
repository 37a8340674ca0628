"""Namespace isolation for a local node: its own network namespace, hostname
and /tmp, without hiding what the node runs from.

    Isolation(netns="sh1a-h0", hostname="node1", tmp=d).wrap(argv)

A local node (a local-cluster agent, a netns host) gets its own /tmp in its
own mount namespace. Anything the agent needs that itself lives under /tmp
(the interpreter's virtualenv, shoal's source tree, SHOAL_HOME: a clone in
/tmp, a test's temporary home) is bound back at the same path inside the
private /tmp before it replaces /tmp.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

TMP = Path("/tmp")


def needed_under_tmp(extra: Iterable[Path] = ()) -> list[Path]:
    """The outermost paths under /tmp that a shoal process started from here needs."""
    import shoal

    candidates = [Path(sys.prefix), Path(sys.base_prefix), Path(shoal.__file__).parents[1]]
    candidates += list(extra)
    under = {p.resolve() for p in candidates if p.resolve().is_relative_to(TMP)}
    keep: list[Path] = []
    for p in sorted(under, key=lambda q: len(q.parts)):
        if p != TMP and not any(p.is_relative_to(k) for k in keep):
            keep.append(p)
    return keep


def private_tmp_script(priv: Path, extra: Iterable[Path] = ()) -> str:
    """Shell commands (for a new mount namespace) making priv the /tmp."""
    priv.mkdir(parents=True, exist_ok=True)
    priv.chmod(0o1777)
    cmds = []
    for path in needed_under_tmp(extra):
        inside = priv / path.relative_to(TMP)
        inside.mkdir(parents=True, exist_ok=True)
        cmds.append(f'mount --bind "{path}" "{inside}"')
    cmds.append(f'mount --rbind "{priv}" /tmp')
    return " && ".join(cmds)


def unshare(argv: list[str], *, setup: str, hostname: str | None = None) -> list[str]:
    """argv run in a mount namespace of its own (and a UTS namespace named
    hostname) once the shell commands setup have run there (root only)."""
    script = f'{setup} && exec "$@"'
    flags = ["--mount", "--propagation", "private"]
    if hostname is None:
        return ["unshare", *flags, "sh", "-c", script, "sh", *argv]
    script = f'hostname "$1" && shift && {script}'
    return ["unshare", "--uts", *flags, "sh", "-c", script, "sh", hostname, *argv]


@dataclass(frozen=True)
class Isolation:
    """Where a local node's process runs: a network namespace (made by
    NetnsHosts), a hostname of its own, a private /tmp (keep: more paths
    under /tmp it must still see). Nothing set: as this process does."""

    netns: str | None = None
    hostname: str | None = None
    tmp: Path | None = None
    keep: tuple[Path, ...] = ()

    def wrap(self, argv: list[str]) -> list[str]:
        if self.tmp is not None or self.hostname is not None:
            setup = private_tmp_script(self.tmp, self.keep) if self.tmp is not None else "true"
            argv = unshare(argv, setup=setup, hostname=self.hostname)
        if self.netns is not None:
            argv = ["ip", "netns", "exec", self.netns, *argv]
        return argv
