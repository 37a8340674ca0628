"""shoal.core: what every layer stands on. Node sets (ClusterShell syntax),
the inventory, settings, the wire (protobuf, channels, keepalive), TLS roles
and work grants, and the node states every report speaks."""

from shoal.core.lazy import exports

__getattr__, __all__ = exports(
    __name__,
    """
    config: Settings shoal_home
    grant: Signer Verifier
    inventory: Address Inventory parse_address parse_listen
    keepalive: Keepalive
    nodeset: fold select
    sections: Section
    states: NodeState
    tls: Identity
    """,
)
