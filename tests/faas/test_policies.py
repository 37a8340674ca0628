from __future__ import annotations

from shoal.faas.adaptive import Adaptive
from shoal.faas.greedydual import GreedyDual
from shoal.faas.hybrid import Hybrid
from shoal.faas.policy import FixedTTL, NoKeepAlive
from shoal.faas.simulate import Config, simulate_trace
from tests.faas.conftest import make_trace

CFG = Config(cold_start=1.0, nodes=1, max_nodes=1)


def test_no_keepalive_makes_every_call_cold() -> None:
    t = make_trace([(0, 0, 1), (10, 0, 1), (20, 0, 1)], [256])
    r = simulate_trace(t, NoKeepAlive(), CFG)
    assert r.cold == 3 and r.wasted_gbs == 0


def test_fixed_ttl_keeps_within_ttl_only() -> None:
    # booted by 1, ends at 2: idle 298 s, warm; then idle 600 s and removed: cold
    t = make_trace([(0, 0, 1), (300, 0, 1), (1001, 0, 1)], [1024])
    r = simulate_trace(t, FixedTTL(600), CFG)
    assert r.cold == 2
    assert abs(r.wasted_gbs - (298 + 600)) < 1e-6


def test_hybrid_prewarms_a_periodic_function() -> None:
    # a call every 30 minutes: once learnt, pre-warmed before each
    calls = [(i * 1800.0, 0, 1.0) for i in range(12)]
    h = Hybrid(min_samples=3)
    r = simulate_trace(make_trace(calls, [256]), h, CFG)
    # cold: the first; the gaps of the 4-hour fallback are warm too
    assert r.cold == 1
    w = h.on_idle(0, 0)
    assert 0 < w.start < 1799 < w.end


def test_greedy_dual_evicts_the_lowest_priority() -> None:
    # capacity for one: f1 (rare) is evicted by f0 ... f0 called often stays
    calls = [(0, 0, 1), (10, 0, 1), (20, 1, 1), (30, 0, 1)]
    r = simulate_trace(make_trace(calls, [1024, 1024]), GreedyDual(capacity_mb=1024), CFG)
    assert r.cold == 3 and r.evictions == 2


def test_adaptive_prewarms_just_before_a_period_and_drops_a_rare_function() -> None:
    a = Adaptive()
    calls = [(i * 3600.0, 0, 1.0) for i in range(10)]
    r = simulate_trace(make_trace(calls, [512]), a, CFG)
    w = a.on_idle(0, 0)
    # to the longest gap seen, then a break-even time (100 s at 512 MB) longer
    assert 3500 < w.start < 3599 < 3700 < w.end < 3800
    # cold: the first, then four more while a pre-warm saves less than the
    # start of a call earlier than any seen (early=1) would cost
    assert r.cold == 5
    assert a.best(__import__("numpy").array([1e6, 2e6]), 10.0).end == 0


def test_adaptive_keeps_each_level_of_concurrency_by_its_own_gaps() -> None:
    # a function is called every 100 s, and a second call joins a running one
    # 30 s after the last pair: each container is pre-warmed for its own gap,
    # from 2 % + 1 s before it to as long after it and a break-even time
    # (a start of a 1 GB function is worth 50 s of it) past that
    a = Adaptive()
    a.bind([1024.0], 1.0)
    for i in range(20):
        a.on_invoke(0, i * 100.0, False, 100.0, level=0)
        a.on_invoke(0, i * 100.0, False, 30.0, level=1)
    first, second = a.on_idle(0, 2000.0, level=0), a.on_idle(0, 2000.0, level=1)
    assert abs(first.start - 97.0) < 1e-6 and abs(first.end - 153.0) < 1e-6
    assert abs(second.start - 28.4) < 1e-6 and abs(second.end - 81.6) < 1e-6
