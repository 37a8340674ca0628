"""The cron scheduler: robfig/cron schedules, one run at a time per job.

Missed cron runs (controller down) are coalesced: on start, a job whose fire
times passed while we were down runs once, recorded with ``coalesced`` = the
number of missed fire times; a job still running when its next time comes is
not started again: a ``skipped`` run is recorded.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from sqlalchemy import select

from shoal.fleet import cronspec
from shoal.fleet.db import Job, JobRun, Node, utcnow
from shoal.fleet.registry import Registry, log
from shoal.fleet.statuspage import StatuspagePusher, metric_map, push_snapshot, read_key


class Cron(Registry):
    """One broken job (a schedule that no longer parses or can never fire, as
    a row written before that check existed may have) is set aside with one
    ``job-broken`` event and one log line; the others keep running."""

    broken_jobs: dict[str, str]  # job name -> why, while it is broken
    _pusher: StatuspagePusher | None = None

    def statuspage(self) -> StatuspagePusher:
        """The pusher of the `metrics` action, made on first use (a missing
        key fails that job run, not the controller's start)."""
        if self._pusher is None:
            s = self.s
            key = read_key(s.statuspage_api_key, s.statuspage_api_key_file)
            self._pusher = StatuspagePusher(s.statuspage_url, s.statuspage_page_id, key)
        return self._pusher

    def next_run(self, j: Job) -> tuple[dt.datetime | None, str | None]:
        """A job's next fire time, or why it has none."""
        try:
            return cronspec.parse(j.cron).next_after(j.last_scheduled or j.created_at), None
        except Exception as e:  # UsageError, or croniter giving up on a date
            return None, _why(e)

    async def schedule(self) -> None:
        now = utcnow()
        async with self.session() as sess, sess.begin():
            jobs = (await sess.execute(select(Job))).scalars().all()
            for j in jobs:
                try:
                    due, missed = self._due(j, now)
                except Exception as e:
                    why = _why(e)
                    if self.broken_jobs.get(j.name) != why:
                        self.broken_jobs[j.name] = why
                        log.warning("job %s set aside: %s", j.name, why)
                        self.event(sess, None, "job-broken", "scheduler", f"{j.name}: {why}")
                    continue
                self.broken_jobs.pop(j.name, None)
                if due is not None:
                    await self._fire(sess, j, due, missed, now)

    @staticmethod
    def _due(j: Job, now: dt.datetime) -> tuple[dt.datetime | None, int]:
        """The fire time to run now (None: not yet), with how many more were missed."""
        sched = cronspec.parse(j.cron)
        due = sched.next_after(j.last_scheduled or j.created_at)
        if due > now:
            return None, 0
        missed = 0
        while True:  # coalesce every fire time that passed into one run
            nxt = sched.next_after(due)
            if nxt > now or missed > 100000:
                return due, missed
            due, missed = nxt, missed + 1

    async def _fire(
        self, sess: Any, j: Job, due: dt.datetime, missed: int, now: dt.datetime
    ) -> None:
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
            return
        run = JobRun(
            job=j.name, scheduled_at=due, started_at=now, status="running", coalesced=missed
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
                res = await push_snapshot(
                    self.statuspage(), metric_map(self.s.statuspage_metrics), await self.snapshot()
                )
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


def _why(e: Exception) -> str:
    from shoal.errors import ShoalError

    return e.message if isinstance(e, ShoalError) else f"{type(e).__name__}: {e}"[:300]
