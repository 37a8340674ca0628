"""A ResourceManager over the fleet controller's pool: the nodes it reports
running (in one pool, if named) are the ones the scheduler may reserve,
dialled at their inventory address. A held node that the controller stops
reporting running (suspect, down, drained, replaced) is handed back to the
scheduler to drain. Talks to the controller's REST API over mutual TLS; the
fleet capability is never imported."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from shoal.core.wire.shoal.v1 import faas_pb2 as xpb
from shoal.errors import ServiceError, ShoalError
from shoal.faas.nodepool import QUARANTINE_S, Slot, SlotPool

log = logging.getLogger("shoal.faas")

RUNNING = "running"  # the controller's state of a node that works
REFRESH_S = 5.0  # the controller's list is fetched at most this often

Prepare = Callable[[str], Awaitable[None]]


class FleetPool(SlotPool):
    def __init__(
        self,
        url: str,
        *,
        verify: Any,
        memory: int,
        address_of: Callable[[str, str | None], tuple[str, int] | None],
        pool: str | None = None,
        prepare: Prepare | None = None,
        refresh_s: float = REFRESH_S,
    ) -> None:
        """address_of(name, address the controller knows) -> (host, port), or
        None when the node cannot be dialled; prepare(name) runs on a node
        before it is first handed out (e.g. sends the functions' code)."""
        import httpx

        self.node_memory = memory
        self.url, self.pool, self.prepare = url.rstrip("/"), pool, prepare
        self.address_of, self.refresh_s = address_of, refresh_s
        self.http = httpx.AsyncClient(base_url=self.url, verify=verify, timeout=10, trust_env=False)
        self.slots: dict[str, Slot] = {}
        self.running: set[str] = set()
        self.fetched = 0.0  # monotonic time of the last good list
        self.prepared: set[str] = set()
        self.lock = asyncio.Lock()
        self.warned = False

    async def refresh(self, *, force: bool = False) -> None:
        """The controller's running nodes; while it does not answer the last
        list stands (the functions keep running without it), and a first
        list that cannot be had is an error."""
        if not force and time.monotonic() - self.fetched < self.refresh_s:
            return
        async with self.lock:
            if not force and time.monotonic() - self.fetched < self.refresh_s:
                return
            try:
                rows = await self._get_nodes()
            except ServiceError as e:
                if not self.fetched:
                    raise
                if not self.warned:
                    log.warning("%s; keeping the last list of %d node(s)", e, len(self.running))
                    self.warned = True
                return
            self.warned = False
            self.fetched = time.monotonic()
            self.running = set()
            for row in rows:
                name, known = row["name"], row.get("address")
                if not isinstance(name, str) or not isinstance(known, str | None):
                    log.warning("controller node %r: not a name and an address; skipped", name)
                    continue
                if self.pool is not None and row.get("pool") != self.pool:
                    continue
                try:
                    where = self.address_of(name, known)
                except (ShoalError, ValueError) as e:  # an address that does not parse
                    log.warning("controller node %s: %s; skipped", name, e)
                    continue
                if where is None:
                    log.warning("controller node %s has no address to dial; skipped", name)
                    continue
                self.running.add(name)
                if name not in self.slots:
                    desc = xpb.NodeDesc(
                        id=name, address=where[0], node_service_port=where[1],
                        memory_in_bytes=self.node_memory,
                    )  # fmt: skip
                    self.slots[name] = Slot(desc)
            # one that comes back (maybe as a new host) gets the code again
            self.prepared &= self.running

    async def _get_nodes(self) -> list[dict[str, Any]]:
        import httpx

        try:
            r = await self.http.get("/v1/nodes", params={"state": RUNNING})
        except httpx.HTTPError as e:
            raise ServiceError(
                f"controller {self.url} unreachable: {type(e).__name__}: {e}"
            ) from None
        if r.status_code != 200:
            raise ServiceError(f"controller {self.url}: /v1/nodes answered {r.status_code}")
        rows = r.json()
        if not isinstance(rows, list) or not all(isinstance(x, dict) and "name" in x for x in rows):
            raise ServiceError(f"controller {self.url}: /v1/nodes is not a list of nodes")
        return rows

    async def reserve(self) -> xpb.NodeDesc | None:
        await self.refresh()
        now = time.monotonic()
        for name in sorted(self.running):
            s = self.slots[name]
            if s.held or s.dead_until > now:
                continue
            s.held = True  # taken before any await: two reservations never share it
            if self.prepare is not None and name not in self.prepared:
                try:
                    await self.prepare(name)
                except Exception as e:  # a node that cannot take the code is not handed out
                    log.warning("node %s not prepared: %s", name, e)
                    s.held, s.dead_until = False, now + QUARANTINE_S
                    continue
                self.prepared.add(name)
            return self._hand_out(s)
        return None

    async def release(self, node_id: str, *, dead: bool = False) -> None:
        await super().release(node_id, dead=dead)
        if dead:
            self.prepared.discard(node_id)  # it may come back as a new, empty host

    async def leaving(self, held: Iterable[str]) -> set[str]:
        await self.refresh()
        return {n for n in held if n not in self.running}

    async def close(self) -> None:
        await self.http.aclose()
