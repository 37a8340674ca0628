"""Subtrees and the result events every level reports for its nodes."""

from __future__ import annotations

import time
from collections.abc import Iterator

from shoal.core.wire import pb


def walk(tree: pb.Subtree) -> Iterator[pb.Subtree]:
    """tree and every subtree below it, depth first."""
    yield tree
    for c in tree.children:
        yield from walk(c)


def names(tree: pb.Subtree) -> list[str]:
    return [t.name for t in walk(tree)]


def result_event(
    node: str, state: int, reason: str = "", start_ns: int = 0, exit_code: int = 0
) -> pb.TaskEvent:
    """A node's final word, timed from start_ns (now when 0) to now."""
    now = time.time_ns()
    res = pb.Result(state=state, reason=reason, exit_code=exit_code)  # type: ignore[arg-type]
    res.timing.start_ns = start_ns or now
    res.timing.end_ns = now
    return pb.TaskEvent(node=node, result=res)
