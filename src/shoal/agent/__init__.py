"""shoal.agent: the node daemon. Its gRPC services run work (each command in a
sandbox of its own), take part in the tree, receive copies and serve
gathers; ``serve`` runs one or more agents in this process."""

from shoal.core.lazy import exports

_EXPORTS = {
    "AgentSpec": "server",
    "ControllerLink": "server",
    "Host": "cgroups",
    "Request": "sandbox",
    "Sandbox": "sandbox",
    "serve": "server",
}
__getattr__ = exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
