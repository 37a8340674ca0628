"""Functions shipped with shoal, importable in any container (shoal is on
every node that runs an agent): what replay and the benchmarks call."""

from __future__ import annotations

import time
from typing import Any


def hold(event: Any) -> str:
    """Run for event["s"] seconds (a trace's duration), then answer "ok"."""
    s = float(event.get("s", 0)) if isinstance(event, dict) else 0.0
    if s > 0:
        time.sleep(s)
    return "ok"


def echo(event: Any) -> Any:
    """The event back."""
    return event
