"""The controller's registry: nodes, heartbeats (buffered), events, the loops' plumbing.

Heartbeats are kept in memory and flushed in one batched UPDATE every
``flush_interval``; while the database is unreachable they stay in memory
(newest per node) and are written when it is back, so no heartbeat state is
lost. The watchdog considers the in-memory heartbeats too.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any

from sqlalchemy import bindparam, update

from shoal.fleet.db import Event, Node, make_engine, utcnow
from shoal.fleet.dbhealth import DB_ERRORS, IDLE, WROTE, DbHealth, brief
from shoal.fleet.executor import Executor, ProcessExecutor
from shoal.fleet.providers import Provider
from shoal.fleet.settings import ControllerSettings

log = logging.getLogger("shoal.fleet")
IN_FLIGHT = ("pending", "deleting", "creating")  # operation steps not yet finished

STATES = ("provisioning", "running", "suspect", "down", "replacing", "drained")


class Registry:
    """The controller's state, its loops' plumbing, events and the node registry."""

    def __init__(
        self,
        settings: ControllerSettings,
        provider: Provider | None = None,
        executor: Executor | None = None,
    ) -> None:
        from sqlalchemy.ext.asyncio import async_sessionmaker

        self.s = settings
        self.engine = make_engine(settings.db_url(), settings.db_timeout)
        self.session = async_sessionmaker(self.engine, expire_on_commit=False)
        self.provider = provider
        if executor is None:
            import shlex

            executor = ProcessExecutor(
                shlex.split(settings.executor) if settings.executor else None
            )
        self.executor = executor
        self.pending_hb: dict[str, dt.datetime] = {}
        self.last_hb: dict[str, dt.datetime] = {}
        self.health = DbHealth()
        self.started_at = utcnow()  # reset when the loops start: silence counts from then
        self.broken_jobs: dict[str, str] = {}
        self.held: set[str] = set()  # hosts waiting for replacement behind the pool limit
        self.breaker_open = False
        self.running_jobs: dict[str, asyncio.Task[None]] = {}
        self.tasks: list[asyncio.Task[None]] = []
        # replacements in flight: provider calls can take minutes, and the
        # watchdog must keep judging the fleet meanwhile
        self.operations: dict[int, asyncio.Task[None]] = {}
        self.counters: dict[str, int] = {
            "heartbeats": 0,
            "job_runs": 0,
            "job_failures": 0,
            "job_skips": 0,
            "replacements": 0,
            "replacement_failures": 0,
        }
        self.watchdog_seconds = 0.0
        self.last_rows: list[Any] = []

    @property
    def db_ok(self) -> bool:
        return self.health.ok

    async def snapshot(self) -> dict[str, Any]:
        """What metrics and Statuspage report: nodes by state, heartbeat ages,
        counters and the loops' health. The last known registry while the
        database is away."""
        from sqlalchemy import select

        now = dt.datetime.now(dt.UTC)
        by_state = dict.fromkeys(STATES, 0)
        ages: list[float] = []
        try:
            async with self.session() as sess:
                q = select(Node.name, Node.state, Node.last_heartbeat)
                rows = (await sess.execute(q)).all()
            self.last_rows = list(rows)
        except DB_ERRORS as e:
            self.health.failed(e, writing=False)
            rows = self.last_rows
        for name, state, hb in rows:
            by_state[state] = by_state.get(state, 0) + 1
            last = max(filter(None, [hb, self.last_hb.get(name)]), default=None)
            if last is not None and state != "drained":
                ages.append((now - last).total_seconds())
        return {
            "nodes": by_state,
            "heartbeat_age_max": max(ages, default=0.0),
            "heartbeat_age_mean": sum(ages) / len(ages) if ages else 0.0,
            **self.counters,
            "db_ok": self.db_ok,
            "breaker_open": self.breaker_open,
            "watchdog_seconds": self.watchdog_seconds,
        }

    async def _loop(self, fn: Any, interval: float) -> None:
        bug = ""  # a failure that is not the database's, logged once until it changes
        while True:
            try:
                did = await fn()
                if did == WROTE:
                    self.health.wrote()
                elif did != IDLE:
                    self.health.reached()
                bug = ""
            except asyncio.CancelledError:
                raise
            except DB_ERRORS as e:  # the database: reported once per change, retried
                self.health.failed(e, writing=True)
            except Exception as e:
                if brief(e) != bug:
                    log.exception("%s failed (not logged again until it changes)", fn.__name__)
                    bug = brief(e)
            await asyncio.sleep(interval)

    async def healthy(self) -> tuple[bool, str]:
        """Whether the database answers, within ``db_timeout``; while writes are
        failing, a write (an event saying they work again) is tried too."""
        from sqlalchemy import text

        try:
            async with asyncio.timeout(self.s.db_timeout):
                async with self.engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
            self.health.reached()
        except DB_ERRORS as e:
            self.health.failed(e, writing=False)
            return False, self.health.why()
        was = self.health.refusing_writes
        if was is not None:
            try:
                async with asyncio.timeout(self.s.db_timeout):
                    async with self.session() as sess, sess.begin():
                        why = f"database accepts writes again (after: {was})"
                        self.event(sess, None, "database", "controller", why)
                self.health.wrote()
            except DB_ERRORS as e:
                self.health.failed(e, writing=True)
        return self.health.ok, self.health.why()

    # ---------- events
    @staticmethod
    def event(
        sess: Any,
        node: str | None,
        kind: str,
        actor: str,
        reason: str,
        from_state: str | None = None,
        to_state: str | None = None,
    ) -> None:
        sess.add(
            Event(
                at=utcnow(),
                node=node,
                kind=kind,
                actor=actor,
                reason=reason,
                from_state=from_state,
                to_state=to_state,
            )
        )

    def transition(self, sess: Any, n: Node, to: str, actor: str, reason: str) -> None:
        if n.state == to:
            return
        self.event(sess, n.name, "state", actor, reason, n.state, to)
        n.state = to
        n.state_since = utcnow()

    # ---------- registry
    async def register(self, name: str, facts: dict[str, Any], pool: str | None) -> Node:
        now = utcnow()
        async with self.session() as sess, sess.begin():
            n = await sess.get(Node, name, with_for_update=True)
            if n is None:
                n = Node(
                    name=name,
                    state="provisioning",
                    pool=pool or "default",
                    created_at=now,
                    state_since=now,
                    generation=0,
                )
                sess.add(n)
                self.event(sess, name, "registered", name, "first registration")
            n.facts = facts
            n.cpus = _int(facts.get("cpus_logical"))
            n.memory = _int(facts.get("memory"))
            n.address = _address(facts)
            if pool:
                n.pool = pool
            n.registered_at = now
            n.last_heartbeat = now
            if n.state != "drained":
                self.transition(sess, n, "running", name, "registered with facts")
        self.health.wrote()
        self.last_hb[name] = now
        self.pending_hb.pop(name, None)
        return n

    def heartbeat(self, name: str) -> None:
        now = utcnow()
        self.pending_hb[name] = now
        self.last_hb[name] = now
        self.counters["heartbeats"] += 1

    async def flush(self) -> int:
        """Write the buffered heartbeats: WROTE, or IDLE when there were none."""
        if not self.pending_hb:
            return IDLE
        batch = self.pending_hb
        self.pending_hb = {}
        try:
            async with self.session() as sess, sess.begin():
                await sess.execute(
                    update(Node.__table__)  # type: ignore[arg-type]
                    .where(Node.__table__.c.name == bindparam("n"))
                    .values(last_heartbeat=bindparam("t")),
                    [{"n": k, "t": v} for k, v in batch.items()],
                )
        except BaseException:
            for k, v in batch.items():  # keep the newest; nothing is lost
                if k not in self.pending_hb or self.pending_hb[k] < v:
                    self.pending_hb[k] = v
            raise
        return WROTE

    async def provision(self, name: str, pool: str, actor: str) -> None:
        """Record a host the operator (or a provider) created; it must register in time."""
        now = utcnow()
        async with self.session() as sess, sess.begin():
            n = await sess.get(Node, name)
            if n is None:
                sess.add(
                    Node(
                        name=name,
                        state="provisioning",
                        pool=pool,
                        created_at=now,
                        state_since=now,
                        generation=0,
                    )
                )
                self.event(sess, name, "state", actor, "provisioned", None, "provisioning")
        self.health.wrote()

    async def set_drain(self, name: str, drained: bool, actor: str, reason: str) -> Node | None:
        async with self.session() as sess, sess.begin():
            n = await sess.get(Node, name, with_for_update=True)
            if n is None:
                return None
            if drained:
                self.transition(sess, n, "drained", actor, reason or "drained by operator")
            elif n.state == "drained":
                self.transition(sess, n, "running", actor, reason or "undrained by operator")
            return n


def _int(v: Any) -> int | None:
    try:
        return int(v) if v is not None else None
    except (TypeError, ValueError):
        return None


def _address(facts: dict[str, Any]) -> str | None:
    for itf in facts.get("interfaces") or []:
        if not isinstance(itf, dict) or itf.get("name") == "lo":
            continue
        for a in itf.get("addresses") or []:
            if isinstance(a, str) and "." in a and not a.startswith("127."):
                return a
    return None
