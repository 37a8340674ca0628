"""Planning the tree: contiguous slices, so neighbours share a subtree.

The ordered node list is cut into at most W contiguous slices; each slice's
first node is the root of that slice, and the rest of the slice is planned
again under it the same way. Every node appears exactly once and the depth
grows as log_W(n).
"""

from __future__ import annotations

from collections.abc import Sequence

from shoal.core.wire import pb


def slices(items: Sequence[tuple[str, str]], width: int) -> list[Sequence[tuple[str, str]]]:
    """At most `width` contiguous, near-equal slices (the first ones one longer)."""
    n = len(items)
    k = min(max(width, 1), n)
    if k == 0:
        return []
    size, extra = divmod(n, k)
    out, at = [], 0
    for i in range(k):
        step = size + (1 if i < extra else 0)
        out.append(items[at : at + step])
        at += step
    return out


def plan(nodes: Sequence[tuple[str, str]], width: int) -> list[pb.Subtree]:
    """nodes: (name, "host:port") in node-list order -> the root subtrees."""
    roots = []
    for part in slices(nodes, width):
        name, address = part[0]
        tree = pb.Subtree(name=name, address=address)
        tree.children.extend(plan(part[1:], width))
        roots.append(tree)
    return roots


def depth(trees: Sequence[pb.Subtree]) -> int:
    return 1 + max((depth(list(t.children)) for t in trees), default=0) if trees else 0
