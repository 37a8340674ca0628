"""shoal.agent: the node daemon. Its gRPC services run work (each command in a
sandbox of its own), take part in the tree, receive copies and serve
gathers; ``serve`` runs one or more agents in this process."""

from shoal.core.lazy import exports

__getattr__, __all__ = exports(
    __name__,
    """
    cgroups: Host
    sandbox: Request Sandbox
    server: AgentSpec ControllerLink serve
    """,
)
