"""shoal.fanout: run work on many nodes through the agent tree, as a library.

    from shoal.fanout import run
    report = run("cn[1-8]", "uname -r", timeout=10)
    print(report.ok, [n.name for n in report if not n.ok])

``run``, ``ping``, ``facts``, ``copy`` and ``gather`` block; their ``*_async``
forms are coroutines. Each returns a Report of NodeResults (state, exit_code,
reason, stdout, stderr, timings, facts or path). The CLI, the fleet's jobs,
bench and faas all call these.
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
from shoal.fanout.report import NodeResult, Report
from shoal.fanout.transfer import copy, copy_async, gather, gather_async

__all__ = [
    "Job",
    "NodeResult",
    "Report",
    "Resources",
    "copy",
    "copy_async",
    "facts",
    "facts_async",
    "gather",
    "gather_async",
    "ping",
    "ping_async",
    "run",
    "run_async",
]
