"""Node sets in ClusterShell syntax, resolved against the inventory's groups.

ClusterShell does the parsing (ranges, padding, multi-dimensional sets, set
operators); this module only binds @groups to the inventory and turns every
failure into a NodeSetError before anything runs.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from shoal.errors import NodeSetError

if TYPE_CHECKING:
    from ClusterShell.NodeSet import NodeSet

    from shoal.core.inventory import Inventory

_GROUP = re.compile(r"@([A-Za-z0-9_.\-*]+)")


def _resolver(groups: dict[str, str]) -> Any:
    from ClusterShell.NodeUtils import GroupResolver, GroupSource

    class StrictSource(GroupSource):
        def resolv_map(self, group: str) -> str:
            if group not in self.groups:
                raise NodeSetError(f"unknown group @{group}")
            return str(self.groups[group])

    allnodes = groups.get("all", ",".join(groups.values()))
    return GroupResolver(StrictSource("inventory", dict(groups), allnodes))


def parse(pattern: str, inventory: Inventory | None = None) -> NodeSet:
    """Parse a node set such as ``cn[0-3,5]``, ``@compute!cn8`` or ``a[1-2]b[1-2]``."""
    from ClusterShell.NodeSet import NodeSet, NodeSetException

    groups = inventory.groups if inventory else {}
    if not pattern or not pattern.strip():
        raise NodeSetError("empty node set")
    for name in _GROUP.findall(pattern):
        if name != "*" and name not in groups:
            raise NodeSetError(f"unknown group @{name}")
    try:
        return NodeSet(pattern, resolver=_resolver(groups))
    except NodeSetException as e:
        raise NodeSetError(f"bad node set {pattern!r}: {e}") from e


def select(
    include: list[str], exclude: list[str] | None = None, inventory: Inventory | None = None
) -> list[str]:
    """The ordered node list for -w (repeatable) minus -x (repeatable)."""
    from ClusterShell.NodeSet import NodeSet

    nodes = NodeSet()
    for pat in include:
        nodes.update(parse(pat, inventory))
    for pat in exclude or []:
        nodes.difference_update(parse(pat, inventory))
    if len(nodes) == 0:
        raise NodeSetError("the node set is empty")
    return list(nodes)


def fold(names: list[str] | set[str]) -> str:
    """Fold node names into ClusterShell's compact form: cn[1-3,7]."""
    from ClusterShell.NodeSet import NodeSet

    return str(NodeSet.fromlist(sorted(names)))
