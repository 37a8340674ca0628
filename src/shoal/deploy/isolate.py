"""A private /tmp for a local node, without hiding what the node runs from.

A local node (a local-cluster agent, a netns host) gets its own /tmp in its
own mount namespace. Anything the agent needs that itself lives under /tmp
(the interpreter's virtualenv, shoal's source tree, SHOAL_HOME: a clone in
/tmp, a test's temporary home) is bound back at the same path inside the
private /tmp before it replaces /tmp.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
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
