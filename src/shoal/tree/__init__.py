"""shoal.tree: the tree engine, the same code on the client and on every agent.

A request carries the subtree its receiver serves. ``Relay`` passes a task to
each child subtree over ``Channels`` and adopts what a dead child leaves;
``Feed`` streams a copy to each child from an origin (the client's
``Source``, an agent's ``Spool``), resuming where the child stands."""

from shoal.core.lazy import exports

_EXPORTS = {
    "Channels": "channels",
    "Feed": "feed",
    "Meta": "spool",
    "Relay": "relay",
    "Source": "source",
    "Spool": "spool",
    "SpoolDirs": "claim",
    "names": "subtree",
    "open_source": "source",
    "result_event": "subtree",
    "walk": "subtree",
}
__getattr__ = exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
