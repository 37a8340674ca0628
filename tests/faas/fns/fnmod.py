"""Functions the scheduler tests run in real containers on real agents."""

from __future__ import annotations

import time
from typing import Any

CALLS = 0  # survives between calls while the container is warm


def count(event: Any) -> dict[str, Any]:
    """Counts its calls; {"mb": N} first holds N MiB, {"s": T} first sleeps T s,
    {"fail": true} raises."""
    global CALLS
    CALLS += 1
    held = []
    if isinstance(event, dict):
        if event.get("fail"):
            raise ValueError("asked to fail")
        for _ in range(int(event.get("mb", 0))):
            held.append(b"\x01" * (1 << 20))  # filled, so the pages are really used
        time.sleep(float(event.get("s", 0)))
    print(f"call {CALLS}")
    if isinstance(event, bytes):  # not JSON: it came as bytes
        event = event.decode(errors="replace")
    return {"calls": CALLS, "event": event, "held_mb": len(held)}
