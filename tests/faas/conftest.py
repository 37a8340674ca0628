from __future__ import annotations

import numpy as np
from agentproc import agents  # noqa: F401

from shoal.faas.model import Function, Trace


def make_trace(calls: list[tuple[float, int, float]], memory: list[float]) -> Trace:
    """(arrival s, function, duration s) calls on functions of the given memory."""
    fns = [Function(f"f{i}", f"a{i}", m) for i, m in enumerate(memory)]
    t = np.array([c[0] for c in calls], float)
    f = np.array([c[1] for c in calls], np.int64)
    d = np.array([c[2] for c in calls], float)
    return Trace(fns, t, f, d)
