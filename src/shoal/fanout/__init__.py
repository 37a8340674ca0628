"""shoal.fanout: run work on many nodes through the agent tree, as a library.

    from shoal.fanout import run
    report = run("cn[1-8]", "uname -r", timeout=10)
    print(report.ok, [n.name for n in report if not n.ok])

``run``, ``ping``, ``facts``, ``copy``, ``gather``, ``start_job`` and ``jobs``
block; their ``*_async`` forms are coroutines. Each returns a Report of
NodeResults (state, exit_code, reason, stdout, stderr, timings, facts, path or
jobs). The CLI, the fleet's jobs, bench and faas all call these.
"""

from shoal.fanout.api import (
    Job,
    Resources,
    facts,
    facts_async,
    ping,
    ping_async,
    run,
    run_async,
)
from shoal.fanout.jobs import Step, jobs, jobs_async, start_job, start_job_async
from shoal.fanout.report import NodeResult, Report

_TRANSFER = ("copy", "copy_async", "gather", "gather_async")


def __getattr__(name: str) -> object:
    # copy and gather on first use: `shoal run` need not import the copy machinery
    if name in _TRANSFER:
        from shoal.fanout import transfer

        return getattr(transfer, name)
    raise AttributeError(f"module 'shoal.fanout' has no attribute {name!r}")


__all__ = [
    "Job",
    "NodeResult",
    "Report",
    "Resources",
    "Step",
    "copy",
    "copy_async",
    "facts",
    "facts_async",
    "gather",
    "gather_async",
    "jobs",
    "jobs_async",
    "ping",
    "ping_async",
    "run",
    "run_async",
    "start_job",
    "start_job_async",
]
