"""shoal.deploy: agents on this machine, for trying shoal, tests and benchmarks.

``LocalCluster`` runs a cluster of real agent processes (``c.start(8)``,
``c.stop("node3")``, ``c.down()``). ``agent_argv`` (with ``AgentNode``,
``agent_env``, ``ready_port``) is the one way to start an agent process: the
local cluster, the fleet's local provider, the tests and the benchmarks use
it. ``NetnsHosts`` makes test hosts with their own addresses and shaped
links; ``Isolation`` (over ``unshare``) runs a process in a node's own
namespaces."""

from shoal.core.lazy import exports

__getattr__, __all__ = exports(
    __name__,
    """
    isolate: Isolation unshare
    launch: AgentNode agent_argv agent_env ready_port
    localcluster: LocalCluster isolation_note
    netns: NetnsHosts
    """,
)
