"""The controller's engine: heartbeat buffer, watchdog, replacement, cron scheduler.

States: provisioning -> running -> suspect -> down -> replacing (-> provisioning),
plus drained (operator). Every transition writes an Event row.

Heartbeats are kept in memory and flushed in one batched UPDATE every
``flush_interval``; while the database is unreachable they stay in memory
(newest per node) and are written when it is back, so no heartbeat state is
lost. The watchdog considers the in-memory heartbeats too.

Missed cron runs (controller down) are coalesced: on start, a job whose fire
times passed while we were down runs once, recorded with ``coalesced`` = the
number of missed fire times; a job still running when its next time comes is
not started again: a ``skipped`` run is recorded.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from typing import Any

from sqlalchemy import and_, bindparam, func, or_, select, update
from sqlalchemy.exc import DBAPIError

from shoal.fleet import cronspec
from shoal.fleet.db import Event, Job, JobRun, Node, Operation, make_engine, migrate, utcnow
from shoal.fleet.executor import CliExecutor, Executor
from shoal.fleet.providers import Provider, ProviderError
from shoal.fleet.settings import ControllerSettings

log = logging.getLogger("shoal.fleet")
IN_FLIGHT = ("pending", "deleting", "creating")  # operation steps not yet finished

STATES = ("provisioning", "running", "suspect", "down", "replacing", "drained")


class Controller:
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

    # ---------- lifecycle of the controller itself
    async def start(self, background: bool = True) -> None:
        await migrate(self.engine)
        self.db_ok = True
        await self.reconcile()
        # Known nodes, so a restart does not send the whole fleet's next
        # heartbeats to the database to ask whether each node exists.
        async with self.session() as sess:
            q = select(Node.name, Node.last_heartbeat).where(Node.last_heartbeat.is_not(None))
            self.last_hb.update({n: t for n, t in (await sess.execute(q)).all() if t})
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

    # ---------- watchdog
    async def watchdog(self) -> None:
        t0 = time.perf_counter()
        now = utcnow()
        s = self.s
        to_replace: list[tuple[str, str]] = []
        async with self.session() as sess, sess.begin():
            # Only rows that may need action, as light tuples: a pass runs in the
            # event loop, and reading all 10,000 rows held heartbeats ~0.2 s (their
            # p99). A running node whose stored heartbeat is fresh needs nothing;
            # the in-memory heartbeats are newer still, so this is a superset.
            stale = now - dt.timedelta(seconds=s.suspect_after)
            cols = (Node.name, Node.state, Node.pool, Node.state_since, Node.last_heartbeat)
            maybe = or_(
                Node.state.in_(("provisioning", "suspect", "down")),
                and_(Node.state == "running", Node.last_heartbeat < stale),
            )
            nodes = (await sess.execute(select(*cols).where(maybe))).all()
            counts = dict(
                (await sess.execute(select(Node.state, func.count()).group_by(Node.state))).all()
            )
            fleet = sum(counts.values())
            n_active = fleet - counts.get("drained", 0)
            silent: list[tuple[Any, str, str]] = []  # (node row, new state, why)
            resumed: set[str] = set()
            back: list[str] = []  # silent nodes heard from again
            for n in nodes:
                hb = max(filter(None, [n.last_heartbeat, self.last_hb.get(n.name)]), default=None)
                age = (now - hb).total_seconds() if hb else None
                if n.state == "provisioning":
                    waited = (now - n.state_since).total_seconds()
                    if waited > s.boot_timeout:
                        why = (
                            f"not registered {waited:.0f}s after provisioning"
                            f" (boot timeout {s.boot_timeout:g}s)"
                        )
                        silent.append((n, "down", why))
                elif n.state in ("running", "suspect", "down") and age is not None:
                    if age <= s.suspect_after:
                        resumed.add(n.name)
                        if n.state != "running":
                            back.append(n.name)
                    elif age > s.down_after and n.state != "down":
                        silent.append((n, "down", f"silent {age:.0f}s (grace {s.down_after:g}s)"))
                    elif n.state == "running":
                        silent.append((n, "suspect", f"silent {age:.0f}s"))
                    elif n.state == "down" and s.policy == "replace":
                        to_replace.append((n.name, n.pool))
                elif n.state == "down" and s.policy == "replace":  # never heard from
                    to_replace.append((n.name, n.pool))
            objs = await self._load_nodes(sess, [*back, *(x[0].name for x in silent)])
            for name in back:
                self.transition(sess, objs[name], "running", "watchdog", "heartbeats resumed")
            newly_down = [x for x in silent if x[1] == "down" and x[0].state != "provisioning"]
            # "together" means silent at the same time, not crossing the grace in the
            # same pass: suspects count, or heartbeats a few ms apart split the group
            lost = {x[0].name for x in silent} | {
                n.name for n in nodes if n.state in ("suspect", "down") and n.name not in resumed
            }
            if (
                n_active >= s.breaker_min_nodes
                and len(lost) >= s.breaker_fraction * n_active
                and newly_down
            ):
                if not self.breaker_open:
                    self.breaker_open = True
                    self.event(
                        sess,
                        None,
                        "circuit-breaker",
                        "watchdog",
                        f"holding: {len(lost)} of {n_active} nodes silent together"
                        f" (>= {s.breaker_fraction:.0%}): likely a network partition,"
                        " not marking down or replacing",
                    )
                for n, st, why in silent:
                    if st == "suspect" or n.state == "running":
                        self.transition(sess, objs[n.name], "suspect", "watchdog", why)
                to_replace = []
            else:
                if self.breaker_open:
                    self.breaker_open = False
                    self.event(sess, None, "circuit-breaker", "watchdog", "closed: fleet healthy")
                for n, st, why in silent:
                    self.transition(sess, objs[n.name], st, "watchdog", why)
                    if st == "down" and s.policy == "replace":
                        to_replace.append((n.name, n.pool))
        self.watchdog_seconds = time.perf_counter() - t0
        await self.resume_orphans()
        if to_replace and self.provider is not None:
            await self.plan_replacements(to_replace, fleet)

    async def _load_nodes(self, sess: Any, names: list[str]) -> dict[str, Node]:
        """ORM objects for these nodes only, in chunks (bounded IN lists)."""
        objs: dict[str, Node] = {}
        for i in range(0, len(names), 500):
            q = select(Node).where(Node.name.in_(names[i : i + 500]))
            objs.update((n.name, n) for n in (await sess.execute(q)).scalars())
        return objs

    # ---------- replacement
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

    # ---------- cron
    async def schedule(self) -> None:
        now = utcnow()
        async with self.session() as sess, sess.begin():
            jobs = (await sess.execute(select(Job))).scalars().all()
            for j in jobs:
                sched = cronspec.parse(j.cron)
                base = j.last_scheduled or j.created_at
                due = sched.next_after(base)
                if due > now:
                    continue
                missed = 0
                while True:  # coalesce every fire time that passed into one run
                    nxt = sched.next_after(due)
                    if nxt > now or missed > 100000:
                        break
                    due, missed = nxt, missed + 1
                j.last_scheduled = due
                if j.name in self.running_jobs and not self.running_jobs[j.name].done():
                    sess.add(
                        JobRun(
                            job=j.name,
                            scheduled_at=due,
                            status="skipped",
                            coalesced=missed,
                            detail={"reason": "previous run still running"},
                        )
                    )
                    self.counters["job_skips"] += 1
                    continue
                run = JobRun(
                    job=j.name,
                    scheduled_at=due,
                    started_at=now,
                    status="running",
                    coalesced=missed,
                )
                sess.add(run)
                await sess.flush()
                self.running_jobs[j.name] = asyncio.create_task(
                    self._run_job(run.id, j.nodes, j.command, j.action)
                )

    async def _run_job(self, run_id: int, nodes: str, command: str | None, action: str) -> None:
        self.counters["job_runs"] += 1
        try:
            if action == "metrics":
                from shoal.fleet.statuspage import push_from_controller

                res = await push_from_controller(self)
            else:
                # drained nodes are out of service: jobs leave them alone
                async with self.session() as sess:
                    q = select(Node.name).where(Node.state == "drained")
                    drained = list((await sess.execute(q)).scalars())
                from shoal.core.nodeset import fold

                res = await self.executor.run(nodes, command, action, fold(drained))
            status = "ok" if res and all(v == "ok" for v in res.values()) else "failed"
            detail: dict[str, Any] = {"nodes": res}
        except Exception as e:
            status, detail = "failed", {"error": f"{type(e).__name__}: {e}"}
        if status == "failed":
            self.counters["job_failures"] += 1
        for _ in range(60):  # the database may be briefly away: keep the record
            try:
                async with self.session() as sess, sess.begin():
                    r = await sess.get(JobRun, run_id)
                    if r is not None:
                        r.status, r.finished_at, r.detail = status, utcnow(), detail
                return
            except Exception:
                await asyncio.sleep(1)


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
