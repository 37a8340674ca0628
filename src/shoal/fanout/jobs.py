"""Jobs: work that runs on the agents after the caller has gone (agent/jobs.py).

    from shoal.fanout import Step, start_job, jobs
    plans = {"cn1": [[Step("a", "make bench")]], "cn2": [[Step("a", "make bench")]]}
    report = start_job("cn[1-2]", "bench", plans, label="nightly")
    ...                                  # later, from anywhere with operator credentials
    report = jobs("cn[1-2]", job_id=report.job_id)   # each node's status in node.jobs

One signed request goes through the tree; each node takes its own plan: a
list of stages run in turn, the steps of a stage at once, each a command in
a sandbox of its own with its log in the job's directory on the node
(``JobStatus.dir``: gather it). A node's result is OK when its job started
(or, for ``jobs``, when it answered), REFUSED with the reason when it would
not (another job of the kind is running there, a bad plan).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Unpack

from shoal.core.wire import pb
from shoal.errors import UsageError
from shoal.fanout.api import NodeSets, Resources, TreeOptions, exec_task, tree_job
from shoal.fanout.report import Report


@dataclass(frozen=True)
class Step:
    """One command of a stage; its log is NAME.log in the job's directory."""

    name: str
    command: str
    env: dict[str, str] = field(default_factory=dict)
    cwd: str = ""
    timeout: float = 0.0
    resources: Resources | None = None

    def to_wire(self) -> pb.JobStep:
        t = exec_task(self.command, timeout=self.timeout, env=self.env, cwd=self.cwd,
                      resources=self.resources)  # fmt: skip
        return pb.JobStep(name=self.name, exec=t.exec)


Plan = Sequence[Sequence[Step]]  # stages, each of steps run at once


def new_job_id(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex[:12]}"


def job_task(
    kind: str, plans: Mapping[str, Plan], *, job_id: str = "", label: str = "", stamp: bool = False
) -> pb.TaskRequest:
    if not plans:
        raise UsageError("a job needs a plan for at least one node")
    wire = {}
    for node, stages in plans.items():
        if not any(stages):
            raise UsageError(f"the plan for {node} has no steps")
        wire[node] = pb.JobPlan(
            stages=[pb.JobStage(steps=[s.to_wire() for s in st]) for st in stages]
        )
    job = pb.JobTask(job_id=job_id or new_job_id(kind), kind=kind, label=label, stamp=stamp,
                     plans=wire)  # fmt: skip
    return pb.TaskRequest(job=job)


async def start_job_async(
    nodes: NodeSets,
    kind: str,
    plans: Mapping[str, Plan],
    *,
    job_id: str = "",
    label: str = "",
    stamp: bool = False,
    **opts: Unpack[TreeOptions],
) -> Report:
    """Start a job on every node (each runs ``plans[node]``); returns once each
    node said it started (``node.jobs[0]``) or refused. ``stamp``: every line
    of a log starts with the agent's capture time (ISO-8601, UTC)."""
    task = job_task(kind, plans, job_id=job_id, label=label, stamp=stamp)
    return await tree_job(task, nodes, **opts).run()


def start_job(
    nodes: NodeSets,
    kind: str,
    plans: Mapping[str, Plan],
    *,
    job_id: str = "",
    label: str = "",
    stamp: bool = False,
    **opts: Unpack[TreeOptions],
) -> Report:
    """Blocking form of start_job_async."""
    task = job_task(kind, plans, job_id=job_id, label=label, stamp=stamp)
    return tree_job(task, nodes, **opts).run_blocking()


def _query(job_id: str, kind: str, stop: bool, forget: bool) -> pb.TaskRequest:
    if forget and stop:
        raise UsageError("stop and forget are two steps: stop, then forget")
    return pb.TaskRequest(jobs=pb.JobQuery(job_id=job_id, kind=kind, stop=stop, forget=forget))


async def jobs_async(
    nodes: NodeSets,
    *,
    job_id: str = "",
    kind: str = "",
    stop: bool = False,
    forget: bool = False,
    **opts: Unpack[TreeOptions],
) -> Report:
    """Every node's jobs (of ``kind``, or the one ``job_id``) in ``node.jobs``;
    ``stop``: stop them first; ``forget``: remove finished ones and their logs."""
    return await tree_job(_query(job_id, kind, stop, forget), nodes, **opts).run()


def jobs(
    nodes: NodeSets,
    *,
    job_id: str = "",
    kind: str = "",
    stop: bool = False,
    forget: bool = False,
    **opts: Unpack[TreeOptions],
) -> Report:
    """Blocking form of jobs_async."""
    return tree_job(_query(job_id, kind, stop, forget), nodes, **opts).run_blocking()
