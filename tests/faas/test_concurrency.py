"""How many calls a container is given at once, from the memory and CPU the
agents reported for its calls."""

from __future__ import annotations

from shoal.faas.concurrency import room_for
from shoal.faas.state import MAX_CAP, Function

MiB = 1 << 20


def fn(memory_mb: int, peak_mb: float, cpu_pct: float = 0.0, cap: int = 1) -> Function:
    f = Function("f", "m:f", memory_mb * MiB, 1000)
    f.peak, f.cpu_pct, f.cap = int(peak_mb * MiB), cpu_pct, cap
    return f


def test_a_light_function_gets_what_memory_leaves_room_for() -> None:
    assert room_for(fn(256, 20)) == 7  # 60 % of 256 MiB holds 7 calls of 20 MiB
    assert room_for(fn(1024, 10)) == MAX_CAP  # never more than MAX_CAP
    assert room_for(fn(256, 20, cap=4)) == MAX_CAP  # 5 MiB a call at 4 at once


def test_memory_or_cpu_heavy_functions_stay_at_one() -> None:
    assert room_for(fn(256, 200)) == 1  # one call uses most of the memory
    # 1 GiB is 0.67 cores; a call using 0.3 of a core leaves no room in half of it
    assert room_for(fn(1024, 10, cpu_pct=30)) == 1
    assert room_for(fn(1024, 10, cpu_pct=10)) == 3  # 0.1 cores a call


def test_nothing_observed_yet_changes_nothing() -> None:
    assert room_for(fn(256, 0, cap=3)) == 3
