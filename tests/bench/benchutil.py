"""Shared by the bench tests: the sysfs trees of real machine types."""

from __future__ import annotations

from pathlib import Path

from shoal.agent.topology import topology
from shoal.core.wire import pb

TOPOLOGIES = Path(__file__).parent / "topologies"


def topo(name: str) -> pb.Topology:
    """A fixture tree read with the agent's own topology reader."""
    return topology(TOPOLOGIES / name)
