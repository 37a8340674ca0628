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
    assert 3500 < w.start < 3599 < w.end < 3700
    # cold: the first, the second (after a break-even keep), the third (one gap known: learnt)
    assert r.cold == 2
    assert a.best(__import__("numpy").array([1e6, 2e6]), 10.0).end == 0
