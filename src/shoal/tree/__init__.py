"""shoal.tree: the tree engine, the same code on the client and on every agent.

A request carries the subtree its receiver serves. ``Relay`` passes a task to
each child subtree over ``Channels`` and adopts what a dead child leaves;
``Feed`` streams a copy to each child from an origin (the client's
``Source``, an agent's ``Spool``), resuming where the child stands."""

from shoal.core.lazy import exports

__getattr__, __all__ = exports(
    __name__,
    """
    channels: Channels dial_node_service
    claim: SpoolDirs
    feed: Feed
    relay: Relay
    source: Source open_source
    spool: Meta Spool
    subtree: names result_event walk
    """,
)
