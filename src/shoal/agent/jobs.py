"""Jobs: work that outlives its caller (a bench campaign runs for hours).

A JobTask names a plan per node; this agent takes its own. The plan's stages
run one after another and the steps of a stage at once, each an ExecTask in
a sandbox of its own (agent/tasks.py), its stdout and stderr going to
DIR/STEP.log on this node, each line stamped with its capture time when the
job asks. The caller gets the job's status at once and may go: `JobQuery`
asks again later (status), stops the job (its commands die, their scratch
goes) or forgets a finished one (its directory goes).

DIR is $SHOAL_HOME/agent/jobs/NODE/JOB_ID, holding job.json (the request)
and state.json (rewritten whole, atomically, at every change), so a status
survives the agent: a job that was running when the agent died or stopped is
"lost" or "stopped" at the next start (its sandboxes were swept with the
rest). One job of a kind runs on a node at a time: a second is refused,
naming the first.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

from google.protobuf import json_format

from shoal.agent import tasks
from shoal.agent.cgroups import Host
from shoal.core.wire import pb
from shoal.tree.subtree import result_event

log = logging.getLogger("shoal.agent")

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_STEP = re.compile(r"[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*")
RUNNING, DONE, STOPPED, LOST = "running", "done", "stopped", "lost"


def _write_state(path: Path, doc: dict[str, object]) -> None:
    """state.json whole or not at all, readable by the agent only."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class JobError(Exception):
    """A job request this agent refuses, with the reason."""


def _check(job: pb.JobTask, plan: pb.JobPlan) -> None:
    if not _ID.fullmatch(job.job_id):
        raise JobError(f"job id {job.job_id!r}: letters, digits, '.', '_', '-' only")
    if not _ID.fullmatch(job.kind):
        raise JobError(f"job kind {job.kind!r}: letters, digits, '.', '_', '-' only")
    names: set[str] = set()
    for stage in plan.stages:
        for step in stage.steps:
            if not _STEP.fullmatch(step.name) or ".." in step.name.split("/"):
                raise JobError(f"step name {step.name!r}: a relative path without '..'")
            if step.name in names:
                raise JobError(f"step name {step.name!r} given twice")
            names.add(step.name)
    if not names:
        raise JobError("the job has no steps for this node")


class _Log:
    """A step's log file; with stamps, each line starts with its capture time."""

    def __init__(self, path: Path, stamp: bool) -> None:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._f = path.open("wb")
        self._stamp = stamp
        self._fresh = {pb.Output.STDOUT: True, pb.Output.STDERR: True}

    def write(self, out: pb.Output) -> None:
        data = out.data
        if self._stamp:
            now = datetime.now(UTC).isoformat(timespec="milliseconds").encode() + b" "
            lines = data.split(b"\n")
            parts = []
            for i, line in enumerate(lines):
                last = i == len(lines) - 1
                if last and not line:
                    break
                at_start = self._fresh[out.stream] if i == 0 else True
                parts.append((now if at_start else b"") + line + (b"" if last else b"\n"))
            self._fresh[out.stream] = data.endswith(b"\n")
            data = b"".join(parts)
        self._f.write(data)
        self._f.flush()

    def close(self) -> None:
        self._f.close()


class Job:
    def __init__(self, node: str, dir: Path, job: pb.JobTask, plan: pb.JobPlan) -> None:
        self.node, self.dir, self.job, self.plan = node, dir, job, plan
        self.status = pb.JobStatus(
            job_id=job.job_id, kind=job.kind, label=job.label, state=RUNNING,
            stages=len(plan.stages), dir=str(dir), started_ns=time.time_ns(),
        )  # fmt: skip
        self.task: asyncio.Task[None] | None = None

    def save(self) -> None:
        doc = json_format.MessageToDict(self.status, preserving_proto_field_name=True)
        _write_state(self.dir / "state.json", doc)

    def end(self, state: str, reason: str = "") -> None:
        if self.status.state != RUNNING:
            return
        self.status.state, self.status.reason = state, reason
        self.status.ended_ns = time.time_ns()
        self.save()

    async def run(self, host: Host) -> None:
        try:
            for stage in self.plan.stages:
                await asyncio.gather(*(self._step(s, host) for s in stage.steps))
                self.status.stage += 1
                self.save()
            self.end(DONE)
        except asyncio.CancelledError:
            self.end(STOPPED, self.status.reason or "agent stopped")
            raise
        except Exception as e:  # the disk under DIR failed: say so in the status
            log.exception("job %s failed", self.job.job_id)
            self.end(STOPPED, f"agent error: {e}")

    async def _step(self, step: pb.JobStep, host: Host) -> None:
        out = _Log(self.dir / f"{step.name}.log", self.job.stamp)
        result: list[pb.Result] = []

        async def emit(ev: pb.TaskEvent) -> None:
            if ev.HasField("output"):
                out.write(ev.output)
            elif ev.HasField("result"):
                result.append(ev.result)

        try:
            await tasks.run_exec(self.node, step.exec, emit, host)
        finally:
            out.close()
        r = result[0] if result else result_event(self.node, pb.STATE_FAILED, "no result").result
        self.status.steps.append(pb.JobStepResult(name=step.name, result=r))
        self.save()


class Jobs:
    """This agent's jobs, by id, for one node name."""

    def __init__(self, root: Path, node: str, host: Host) -> None:
        self.root, self.node, self.host = root, node, host
        self._jobs: dict[str, Job] = {}

    def sweep(self) -> None:
        """At start: a job the last agent left running did not finish."""
        for state in sorted(self.root.glob("*/state.json")):
            with contextlib.suppress(OSError, ValueError):
                doc = json.loads(state.read_text())
                if doc.get("state") == RUNNING:
                    doc.update(state=LOST, reason="the agent stopped while it ran",
                               ended_ns=str(time.time_ns()))  # fmt: skip
                    _write_state(state, doc)
                    log.warning("job %s was lost with the previous agent", state.parent.name)

    def start(self, job: pb.JobTask) -> pb.JobStatus:
        if job.job_id in self._jobs:  # a replayed or adopted request: the same job
            return self._jobs[job.job_id].status
        if self.node not in job.plans:
            raise JobError(f"the job has no plan for {self.node}")
        plan = job.plans[self.node]
        _check(job, plan)
        for other in self._status(kind=job.kind):
            if other.state == RUNNING:
                since = datetime.fromtimestamp(other.started_ns / 1e9, UTC)
                raise JobError(
                    f"{job.kind} job {other.job_id} ({other.label}) is running here since"
                    f" {since:%Y-%m-%d %H:%M:%S} UTC: stop it first"
                )
        d = self.root / job.job_id
        if d.exists():
            raise JobError(f"job {job.job_id} ran here already")
        d.mkdir(mode=0o700, parents=True)
        fd = os.open(d / "job.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(json_format.MessageToJson(job, preserving_proto_field_name=True))
        j = self._jobs[job.job_id] = Job(self.node, d, job, plan)
        j.save()
        j.task = asyncio.create_task(j.run(self.host), name=f"job-{job.job_id}")
        log.info("%s: job %s (%s) started, %d stage(s)", self.node, job.job_id, job.kind,
                 len(plan.stages))  # fmt: skip
        return j.status

    def _status(self, job_id: str = "", kind: str = "") -> list[pb.JobStatus]:
        found: dict[str, pb.JobStatus] = {}
        for state in sorted(self.root.glob("*/state.json")):
            with contextlib.suppress(OSError, ValueError, json_format.ParseError):
                s = json_format.ParseDict(json.loads(state.read_text()), pb.JobStatus())
                found[s.job_id] = s
        for j in self._jobs.values():
            found[j.job.job_id] = j.status
        return [
            s for s in found.values()
            if (not job_id or s.job_id == job_id) and (not kind or s.kind == kind)
        ]  # fmt: skip

    async def query(self, q: pb.JobQuery, who: str) -> list[pb.JobStatus]:
        got = self._status(q.job_id, q.kind)
        if q.job_id and not got:
            raise JobError(f"no job {q.job_id} on {self.node}")
        if q.stop:
            for s in got:
                j = self._jobs.get(s.job_id)
                if j is not None and j.task is not None and not j.task.done():
                    j.status.reason = f"stopped by {who}"
                    j.task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await j.task
            got = self._status(q.job_id, q.kind)
        if q.forget:
            for s in got:
                if s.state == RUNNING:
                    raise JobError(f"job {s.job_id} is running: stop it first")
            for s in got:
                self._jobs.pop(s.job_id, None)
                shutil.rmtree(self.root / s.job_id, ignore_errors=True)
        return got

    async def close(self) -> None:
        """Agent shutdown: running jobs stop (their commands die with the agent's)."""
        running = [j.task for j in self._jobs.values() if j.task and not j.task.done()]
        for t in running:
            t.cancel()
        for t in running:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
