"""shoal.deploy: agents on this machine, for trying shoal, tests and benchmarks.

    from shoal.deploy import LocalCluster
    c = LocalCluster(); c.start(8); ...; c.down()

``agent_argv`` (with ``AgentNode``, ``agent_env``, ``ready_port``) is the one
way to start an agent process: the local cluster, the fleet's local provider,
the tests and the benchmarks all use it. ``NetnsHosts`` makes test hosts with
their own addresses and shaped links; ``Isolation`` (and ``unshare``) runs a
process in a node's own namespaces.
"""

from shoal.deploy.isolate import Isolation, unshare
from shoal.deploy.launch import AgentNode, agent_argv, agent_env, ready_port
from shoal.deploy.localcluster import LocalCluster, isolation_note
from shoal.deploy.netns import NetnsHosts

__all__ = [
    "AgentNode",
    "Isolation",
    "LocalCluster",
    "NetnsHosts",
    "agent_argv",
    "agent_env",
    "isolation_note",
    "ready_port",
    "unshare",
]
