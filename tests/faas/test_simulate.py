from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shoal.faas.azure import load_trace
from shoal.faas.generate import generate_azure, generate_burst
from shoal.faas.metrics import score
from shoal.faas.oracle import lower_bounds
from shoal.faas.registry import POLICIES, make_policy
from shoal.faas.simulate import Config, simulate_trace
from tests.faas.conftest import make_trace


@pytest.fixture(scope="module")
def trace(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    d = tmp_path_factory.mktemp("azure")
    generate_azure(d, functions=30, days=1, seed=7)
    return load_trace(d)


@pytest.mark.parametrize("name", list(POLICIES))
def test_every_call_answered_once_and_memory_never_negative(trace, name: str) -> None:  # type: ignore[no-untyped-def]
    r = simulate_trace(trace, make_policy(name))
    assert (r.answered == 1).all()
    assert r.min_free_mb >= 0
    assert r.errors == 0 and r.wasted_gbs >= 0 and r.nd > 0


@pytest.mark.parametrize("name", list(POLICIES))
def test_oracle_is_below_every_policy(trace, name: str) -> None:  # type: ignore[no-untyped-def]
    b = lower_bounds(trace)
    base = simulate_trace(trace, make_policy("ttl-10"))
    r = simulate_trace(trace, make_policy(name))
    assert b.rt <= r.rt + 1e-6
    assert b.cold <= r.cold
    if r.cold == 0:  # the idle floor is that of a run without cold starts
        assert b.wasted_gbs <= r.wasted_gbs + 1e-6
    assert b.nd <= r.nd + 1e-6
    assert b.to_json(base)["score"] <= score(r, base) + 1e-9


def test_baseline_scores_one(trace) -> None:  # type: ignore[no-untyped-def]
    base = simulate_trace(trace, make_policy("ttl-10"))
    assert score(simulate_trace(trace, make_policy("ttl-10")), base) == pytest.approx(1.0)


def test_a_function_bigger_than_a_node_fails_its_calls() -> None:
    t = make_trace([(0, 0, 1), (1, 1, 1)], [4000, 128])
    r = simulate_trace(t, make_policy("ttl-10"))
    assert r.errors == 1 and (r.answered == 1).all()


def test_calls_queue_for_memory_then_time_out() -> None:
    # one node holds one 2 GB container; the second call waits past its time-out
    t = make_trace([(0, 0, 100), (0, 1, 1)], [2048, 2048])
    r = simulate_trace(t, make_policy("none"), Config(nodes=1, max_nodes=1, timeout=10))
    assert r.errors == 1 and (r.answered == 1).all() and r.min_free_mb >= 0


def test_a_reserved_node_serves_waiting_calls() -> None:
    t = make_trace([(0, 0, 100), (0, 1, 1)], [2048, 2048])
    r = simulate_trace(
        t, make_policy("none"), Config(nodes=1, max_nodes=2, reserve_s=5, timeout=60)
    )
    assert r.errors == 0 and r.peak_nodes == 2
    assert r.sl == pytest.approx(1.0 + 5.0 + 1.0)  # a cold start each, one after the node came


def test_both_placements_answer_every_call_and_never_overcommit(tmp_path: Path) -> None:
    generate_burst(tmp_path, functions=6, calls=3000, seconds=120, seed=2)
    t = load_trace(tmp_path)
    ff = simulate_trace(t, make_policy("ttl-10"), Config(placement="first-fit"))
    pk = simulate_trace(t, make_policy("ttl-10"), Config(placement="pack"))
    assert (ff.answered == 1).all() and (pk.answered == 1).all()
    assert np.isfinite(pk.nd) and pk.min_free_mb >= 0


def test_calls_per_container_are_learned_as_the_scheduler_learns_them() -> None:
    # one 128 MB function on a node with room for 4 of its containers; a
    # round of 8 overlapping 1 s calls every 10 s, 12 rounds
    calls = [(10.0 * k + 0.001 * j, 0, 1.0) for k in range(12) for j in range(8)]
    t = make_trace(calls, [128])

    def run(max_calls: int):  # type: ignore[no-untyped-def]
        c = Config(nodes=1, max_nodes=1, node_mb=512, cold_start=0.5, max_calls=max_calls)
        return simulate_trace(t, make_policy("ttl-10"), c)

    one, learned = run(1), run(8)
    # one call each: every round 4 calls wait for one of the 4 containers
    assert one.containers == 4 and one.cold == 8 + 11 * 4
    # round 1 presses (calls found no room) and returns cleanly: 8 calls per
    # container from then on, so later rounds all find room
    assert learned.containers == 4 and learned.cold == 8
    assert learned.sl < one.sl
    for r in (one, learned):
        assert (r.answered == 1).all() and r.errors == 0 and r.min_free_mb >= 0


def test_a_periodic_burst_is_pre_warmed_whole() -> None:
    # two overlapping calls every 100 s: the first to end is kept (its twin
    # still runs), the last is removed and both are back warm for the next
    calls = [(100.0 * k + 0.001 * j, 0, 1.0 + 0.5 * j) for k in range(30) for j in range(2)]
    r = simulate_trace(make_trace(calls, [128]), make_policy("shoal"), Config(nodes=1, max_nodes=1))
    assert r.cold == 2  # the first burst only
    assert (r.answered == 1).all() and r.errors == 0
    assert r.wasted_gbs < 2 * 30 * 100 * 128 / 1024  # less than keeping both all along
