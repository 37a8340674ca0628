"""The tree plan: contiguous slices, every node exactly once, log depth."""

from __future__ import annotations

import pytest

from shoal.core.wire import pb
from shoal.fanout.plan import depth, plan


def _nodes(n: int) -> list[tuple[str, str]]:
    return [(f"cn{i}", f"h{i}:1995") for i in range(n)]


def _flatten(t: pb.Subtree) -> list[str]:
    out = [t.name]
    for c in t.children:
        out += _flatten(c)
    return out


@pytest.mark.parametrize("n,w", [(1, 8), (5, 2), (64, 8), (236, 2), (1024, 8), (10, 1), (7, 20)])
def test_every_node_once_in_order(n: int, w: int) -> None:
    roots = plan(_nodes(n), w)
    assert len(roots) == min(n, w)
    order = [name for r in roots for name in _flatten(r)]
    # depth-first order equals node-list order: every subtree is a contiguous slice
    assert order == [f"cn{i}" for i in range(n)]
    for r in roots:
        assert len(r.children) <= w


def test_slices_are_contiguous_and_balanced() -> None:
    roots = plan(_nodes(10), 3)
    sizes = [len(_flatten(r)) for r in roots]
    assert sizes == [4, 3, 3]
    assert [r.name for r in roots] == ["cn0", "cn4", "cn7"]
    assert roots[0].children[0].name == "cn1" and roots[0].address == "h0:1995"


def test_depth_is_logarithmic() -> None:
    assert depth(plan(_nodes(8), 8)) == 1
    assert depth(plan(_nodes(64), 8)) == 2  # 8 roots, each with 7 leaves
    assert depth(plan(_nodes(1024), 8)) <= 4
    assert depth(plan(_nodes(5), 1)) == 5
    assert plan([], 8) == []
