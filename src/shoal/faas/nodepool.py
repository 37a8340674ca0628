"""Where the scheduler's nodes come from (mini-faas's ResourceManager):
ReserveNode, ReleaseNode, GetNodesUsage over a set of shoal agents."""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass

from shoal.core.wire.shoal.v1 import faas_pb2 as xpb

QUARANTINE_S = 30.0  # a node given back as dead is not handed out again before this


def _ms() -> int:
    return int(time.time() * 1000)


class Pool(ABC):
    node_memory: int  # bytes a function may use on one node

    @abstractmethod
    async def reserve(self) -> xpb.NodeDesc | None:
        """A node for the scheduler to hold, or None when there is none."""

    @abstractmethod
    async def release(self, node_id: str, *, dead: bool = False) -> None: ...

    @abstractmethod
    def usage(self) -> list[xpb.NodeDesc]: ...

    async def leaving(self, held: Iterable[str]) -> set[str]:
        """Of the held nodes, those the pool wants back (to be drained)."""
        return set()

    async def close(self) -> None:  # noqa: B027
        """Let go of what the pool itself holds open."""


@dataclass
class Slot:
    desc: xpb.NodeDesc
    held: bool = False
    dead_until: float = 0.0


class SlotPool(Pool):
    """A pool of known nodes, each held by the scheduler or not; a node given
    back as dead is not handed out again for a while."""

    slots: dict[str, Slot]

    def _hand_out(self, s: Slot) -> xpb.NodeDesc:
        s.desc.reserved_time_timestamp_ms = _ms()
        s.desc.released_time_timestamp_ms = 0
        out = xpb.NodeDesc()
        out.CopyFrom(s.desc)
        return out

    async def release(self, node_id: str, *, dead: bool = False) -> None:
        s = self.slots.get(node_id)
        if s is None or not s.held:
            return
        s.held = False
        s.desc.released_time_timestamp_ms = _ms()
        if dead:
            s.dead_until = time.monotonic() + QUARANTINE_S

    def usage(self) -> list[xpb.NodeDesc]:
        return [s.desc for s in self.slots.values() if s.held]


class StaticPool(SlotPool):
    """A fixed set of agents, e.g. an inventory's node set; every node offers
    ``memory`` bytes. ``reserve_delay_s`` models a cloud's start-up."""

    def __init__(
        self, nodes: list[tuple[str, str, int]], memory: int, *, reserve_delay_s: float = 0.0
    ) -> None:
        self.node_memory = memory
        self.delay = reserve_delay_s
        self.slots = {
            name: Slot(
                xpb.NodeDesc(id=name, address=host, node_service_port=port, memory_in_bytes=memory)
            )
            for name, host, port in nodes
        }

    async def reserve(self) -> xpb.NodeDesc | None:
        now = time.monotonic()
        for s in self.slots.values():
            if not s.held and s.dead_until <= now:
                s.held = True  # taken before the delay: two reservations never share it
                if self.delay > 0:
                    await asyncio.sleep(self.delay)
                return self._hand_out(s)
        return None
