"""One vocabulary for a node's state, from the wire to reports, JSON and the fleet.

The wire carries shoal.v1.State numbers; everything above it speaks NodeState,
whose values are what people read ("PASS", "FAILED"...) and what --json
prints. Severity orders states for exit status: the worst one wins.
"""

from __future__ import annotations

from enum import StrEnum

from shoal.core.wire import pb
from shoal.errors import EXIT_FAILED, EXIT_OK, EXIT_TIMEOUT, EXIT_UNREACHABLE


class NodeState(StrEnum):
    PASS = "PASS"  # ran, exit status 0
    FAILED = "FAILED"  # ran, non-zero exit status or a local error
    OOM = "OOM"  # its sandbox hit its memory limit
    TIMEOUT = "TIMEOUT"  # killed at its time limit
    UNREACHABLE = "UNREACHABLE"  # could not be connected, or lost
    REFUSED = "REFUSED"  # the TLS handshake or the work was refused

    @classmethod
    def from_wire(cls, state: int) -> NodeState:
        return _FROM_WIRE.get(state, cls.FAILED)

    def to_wire(self) -> int:
        return _TO_WIRE[self]

    @property
    def severity(self) -> int:
        return _SEVERITY[self]

    @property
    def exit_code(self) -> int:
        return _EXIT[self]


_FROM_WIRE: dict[int, NodeState] = {
    pb.STATE_OK: NodeState.PASS,
    pb.STATE_FAILED: NodeState.FAILED,
    pb.STATE_OOM: NodeState.OOM,
    pb.STATE_TIMEOUT: NodeState.TIMEOUT,
    pb.STATE_UNREACHABLE: NodeState.UNREACHABLE,
    pb.STATE_REFUSED: NodeState.REFUSED,
}
_TO_WIRE = {v: k for k, v in _FROM_WIRE.items()}
_SEVERITY = {
    NodeState.PASS: 0,
    NodeState.FAILED: 1,
    NodeState.OOM: 1,
    NodeState.TIMEOUT: 2,
    NodeState.UNREACHABLE: 3,
    NodeState.REFUSED: 3,
}
_EXIT = {
    NodeState.PASS: EXIT_OK,
    NodeState.FAILED: EXIT_FAILED,
    NodeState.OOM: EXIT_FAILED,
    NodeState.TIMEOUT: EXIT_TIMEOUT,
    NodeState.UNREACHABLE: EXIT_UNREACHABLE,
    NodeState.REFUSED: EXIT_UNREACHABLE,
}
