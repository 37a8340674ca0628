"""The controller's engine: the registry, the watchdog, replacement and cron,
each in its own module (registry, watchdog, replace, cron); this one starts
and stops their loops.

States: provisioning -> running -> suspect -> down -> replacing (-> provisioning),
plus drained (operator). Every transition writes an Event row.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from shoal.fleet.cron import Cron
from shoal.fleet.db import Node, make_engine, migrate, utcnow
from shoal.fleet.registry import IN_FLIGHT, STATES
from shoal.fleet.watchdog import Watchdog

__all__ = ["IN_FLIGHT", "STATES", "Controller"]


class Controller(Watchdog, Cron):
    # ---------- lifecycle of the controller itself
    async def start(self, background: bool = True) -> None:
        # migrations may run long statements: only connecting is bounded
        mig = make_engine(self.s.db_url(), self.s.db_timeout, command_timeout=3600)
        try:
            await migrate(mig)
        finally:
            await mig.dispose()
        await self.reconcile()
        # Known nodes, so a restart does not send the whole fleet's next
        # heartbeats to the database to ask whether each node exists.
        async with self.session() as sess:
            q = select(Node.name, Node.last_heartbeat).where(Node.last_heartbeat.is_not(None))
            self.last_hb.update({n: t for n, t in (await sess.execute(q)).all() if t})
        self.started_at = utcnow()
        if background:
            self.tasks = [
                asyncio.create_task(self._loop(self.flush, self.s.flush_interval)),
                asyncio.create_task(self._loop(self.watchdog, self.s.check_interval)),
                asyncio.create_task(self._loop(self.schedule, 0.5)),
            ]

    async def stop(self) -> None:
        for t in self.tasks:
            t.cancel()
        for t in [*self.running_jobs.values(), *self.operations.values()]:
            t.cancel()  # an operation cut short is resumed from its log on start
        await asyncio.gather(
            *self.tasks,
            *self.running_jobs.values(),
            *self.operations.values(),
            return_exceptions=True,
        )
        try:
            await self.flush()
        except Exception:
            pass
        await self.engine.dispose()
