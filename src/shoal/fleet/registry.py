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
from sqlalchemy.exc import DBAPIError

from shoal.fleet.db import Event, Node, make_engine, utcnow
from shoal.fleet.executor import CliExecutor, Executor
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
        self.engine = make_engine(settings.db_url())
        self.session = async_sessionmaker(self.engine, expire_on_commit=False)
        self.provider = provider
        if executor is None:
            import shlex

            executor = CliExecutor(shlex.split(settings.executor) if settings.executor else None)
        self.executor = executor
        self.pending_hb: dict[str, dt.datetime] = {}
        self.last_hb: dict[str, dt.datetime] = {}
        self.db_ok = False
        self.db_error = ""
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

    async def _loop(self, fn: Any, interval: float) -> None:
        while True:
            try:
                await fn()
                if not self.db_ok:
                    log.warning("database reachable again")
                self.db_ok = True
            except asyncio.CancelledError:
                raise
            except (DBAPIError, OSError, TimeoutError) as e:  # database: report, retry
                self.db_ok = False
                self.db_error = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
                log.warning("%s failed (will retry): %s", fn.__name__, self.db_error)
            except Exception:
                log.exception("%s failed", fn.__name__)
            await asyncio.sleep(interval)

    async def healthy(self) -> tuple[bool, str]:
        from sqlalchemy import text

        try:
            async with self.engine.connect() as conn:
                await asyncio.wait_for(conn.execute(text("SELECT 1")), 5)
            return True, "ok"
        except Exception as e:
            self.db_ok = False
            self.db_error = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
            return False, f"database unreachable: {self.db_error}"

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
        self.last_hb[name] = now
        self.pending_hb.pop(name, None)
        return n

    def heartbeat(self, name: str) -> None:
        now = utcnow()
        self.pending_hb[name] = now
        self.last_hb[name] = now
        self.counters["heartbeats"] += 1

    async def write_heartbeat_now(self, name: str) -> None:
        """The reference practice (one UPDATE per heartbeat), kept for the benchmark."""
        now = utcnow()
        async with self.session() as sess, sess.begin():
            await sess.execute(update(Node).where(Node.name == name).values(last_heartbeat=now))
        self.last_hb[name] = now
        self.counters["heartbeats"] += 1

    async def flush(self) -> None:
        if not self.pending_hb:
            return
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
