"""Replacement: bounded (K in flight, P % of a pool per window, back-off per
host), logged as operations with an idempotency key before any provider call,
resumed from that log on start."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

from sqlalchemy import func, select, update

from shoal.errors import ProviderError
from shoal.fleet.db import JobRun, Node, Operation, utcnow
from shoal.fleet.registry import IN_FLIGHT, Registry, log


class Replacer(Registry):
    async def plan_replacements(self, cands: list[tuple[str, str]], fleet: int) -> None:
        s = self.s
        now = utcnow()
        started: list[int] = []
        async with self.session() as sess, sess.begin():
            inflight = (
                await sess.execute(select(func.count()).where(Operation.step.in_(IN_FLIGHT)))
            ).scalar_one()
            since = now - dt.timedelta(seconds=s.window)
            for name, pool in cands:
                if inflight >= s.max_concurrent:
                    break
                pool_size = (
                    await sess.execute(select(func.count()).where(Node.pool == pool))
                ).scalar_one()
                recent = (
                    await sess.execute(
                        select(func.count()).where(
                            Operation.pool == pool, Operation.created_at >= since
                        )
                    )
                ).scalar_one()
                if (recent + 1) > max(1.0, pool_size * s.max_pool_percent / 100.0):
                    if name in self.held:  # said when it began; nothing changed since
                        continue
                    self.held.add(name)
                    self.event(
                        sess,
                        name,
                        "replace-held",
                        "watchdog",
                        f"pool {pool}: {recent} replacements in the last {s.window:g}s"
                        f" (limit {s.max_pool_percent:g}% of {pool_size})",
                    )
                    continue
                prev = (
                    await sess.execute(
                        select(Operation)
                        .where(Operation.node == name)
                        .order_by(Operation.id.desc())
                        .limit(1)
                    )
                ).scalar_one_or_none()
                n = await sess.get(Node, name, with_for_update=True)
                if n is None or n.state != "down":
                    continue
                if prev is not None and prev.step == "failed":
                    fails = int((prev.detail or {}).get("consecutive_failures", 1))
                    wait = s.backoff * 2 ** (fails - 1)
                    if (now - prev.updated_at).total_seconds() < wait:
                        continue
                key = f"replace:{name}:{n.generation + 1}"
                if (await sess.execute(select(Operation).where(Operation.key == key))).first():
                    continue
                fails = (
                    int((prev.detail or {}).get("consecutive_failures", 0))
                    if prev is not None and prev.step == "failed"
                    else 0
                )
                op = Operation(
                    key=key,
                    kind="replace",
                    node=name,
                    pool=pool,
                    step="pending",
                    attempts=0,
                    created_at=now,
                    updated_at=now,
                    detail={"consecutive_failures": fails},
                )
                sess.add(op)
                n.generation += 1
                self.transition(sess, n, "replacing", "watchdog", f"policy replace ({key})")
                await sess.flush()
                started.append(op.id)
                inflight += 1
        for op_id in started:
            self._spawn(op_id)

    def _spawn(self, op_id: int) -> None:
        if op_id in self.operations:
            return
        t = asyncio.create_task(self._operate(op_id))
        self.operations[op_id] = t
        t.add_done_callback(lambda _t: self.operations.pop(op_id, None))

    async def _operate(self, op_id: int) -> None:
        try:
            await self.run_operation(op_id)
        except asyncio.CancelledError:
            raise
        except Exception:  # e.g. the database went away: the watchdog resumes it later
            log.exception("replacement operation %d interrupted", op_id)

    async def resume_orphans(self) -> None:
        """Operations the log says are in flight but no task is running (a
        database error cut one short): resume them, so none holds a K slot."""
        if self.provider is None:
            return
        async with self.session() as sess:
            q = select(Operation.id).where(Operation.step.in_(IN_FLIGHT))
            for i in (await sess.execute(q)).scalars().all():
                self._spawn(i)

    async def run_operation(self, op_id: int) -> None:
        """Advance one replacement: pending -> deleting -> creating -> done.

        The step is committed before each provider call, and every call
        carries the key, so a restart repeats at most one idempotent call.
        """
        assert self.provider is not None
        t0 = time.perf_counter()
        async with self.session() as sess:
            op = await sess.get(Operation, op_id)
            assert op is not None
            try:
                if op.step in ("pending", "deleting"):
                    op.step, op.attempts, op.updated_at = "deleting", op.attempts + 1, utcnow()
                    await sess.commit()
                    await self.provider.delete(op.node, op.pool, op.key)
                    op.step, op.updated_at = "creating", utcnow()
                    await sess.commit()
                if op.step == "creating":
                    ident = await self.provider.create(op.node, op.pool, op.key)
                    op.step, op.updated_at = "done", utcnow()
                    op.seconds = time.perf_counter() - t0
                    op.detail = {**(op.detail or {}), "id": ident, "consecutive_failures": 0}
                    n = await sess.get(Node, op.node)
                    if n is not None:
                        self.transition(
                            sess, n, "provisioning", "provider", f"replacement created ({op.key})"
                        )
                    self.event(sess, op.node, "replaced", "provider", f"{op.key} id={ident}")
                    self.counters["replacements"] += 1
                    await sess.commit()
            except ProviderError as e:
                await sess.rollback()
                op = await sess.get(Operation, op_id)
                assert op is not None
                fails = int((op.detail or {}).get("consecutive_failures", 0)) + 1
                op.step, op.updated_at = "failed", utcnow()
                op.detail = {**(op.detail or {}), "error": str(e), "consecutive_failures": fails}
                n = await sess.get(Node, op.node)
                if n is not None:
                    self.transition(sess, n, "down", "provider", f"replacement failed: {e}")
                self.counters["replacement_failures"] += 1
                await sess.commit()

    async def reconcile(self) -> None:
        """On start: finish every replacement a previous run left half done."""
        async with self.session() as sess, sess.begin():
            await sess.execute(
                update(JobRun)
                .where(JobRun.status == "running")
                .values(
                    status="interrupted",
                    finished_at=utcnow(),
                    detail={"reason": "controller stopped during the run"},
                )
            )
            ids = (
                (await sess.execute(select(Operation.id).where(Operation.step.in_(IN_FLIGHT))))
                .scalars()
                .all()
            )
            if ids:
                self.event(
                    sess,
                    None,
                    "reconcile",
                    "controller",
                    f"resuming {len(ids)} unfinished replacement(s) from the operation log",
                )
        if ids and self.provider is None:
            log.warning("%d unfinished replacements but no provider configured", len(ids))
            return
        for i in ids:
            self._spawn(i)
