"""The cron scheduler: robfig/cron schedules, one run at a time per job.

Missed cron runs (controller down) are coalesced: on start, a job whose fire
times passed while we were down runs once, recorded with ``coalesced`` = the
number of missed fire times; a job still running when its next time comes is
not started again: a ``skipped`` run is recorded.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select

from shoal.fleet import cronspec
from shoal.fleet.db import Job, JobRun, Node, utcnow
from shoal.fleet.registry import Registry


class Cron(Registry):
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
