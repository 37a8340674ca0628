"""shoal.core: what every layer stands on. Node sets (ClusterShell syntax),
the inventory, settings, the wire (protobuf, channels, keepalive), TLS roles
and work grants, and the node states every report speaks."""

from shoal.core.lazy import exports

_EXPORTS = {
    "Address": "inventory",
    "Identity": "tls",
    "Inventory": "inventory",
    "Keepalive": "keepalive",
    "NodeState": "states",
    "Section": "sections",
    "Settings": "config",
    "Signer": "grant",
    "Verifier": "grant",
    "fold": "nodeset",
    "parse_address": "inventory",
    "parse_listen": "inventory",
    "select": "nodeset",
    "shoal_home": "config",
}
__getattr__ = exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
