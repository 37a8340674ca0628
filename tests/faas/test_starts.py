"""The simulator's container starts (faas/starts.py): measured ones in turn,
and the agents' spare workers modelled as agent/spares.py keeps them."""

from __future__ import annotations

import pytest

from shoal.agent.spares import GROWTH, STARTING
from shoal.faas.policy import NoKeepAlive
from shoal.faas.simulate import Config, simulate_trace
from shoal.faas.starts import Starts
from tests.faas.conftest import make_trace


def test_measured_starts_are_taken_in_turn_and_without_any_the_configured_one() -> None:
    s = Starts(1.0, (0.2, 0.3))
    assert [s.take(0, 0.0) for _ in range(3)] == [0.2, 0.3, 0.2]
    assert Starts(1.5).take(0, 0.0) == 1.5


def test_spares_are_taken_replaced_and_grow_after_a_miss() -> None:
    s = Starts(1.0, spares=2, spare_s=0.01)
    assert [s.take(0, 0.0) for _ in range(3)] == [0.01, 0.01, 1.0]  # the third found none
    assert s.pools[0].want == 3 and len(s.pools[0].starting) == STARTING
    assert s.take(1, 0.0) == 0.01  # another node has its own
    # STARTING replacements are ready a start later, the third a start after that
    assert not s.waiting(0, 0.99) and s.waiting(0, 1.0)
    assert s.pools[0].ready == STARTING
    s.take(0, 2.0)
    assert s.pools[0].ready + len(s.pools[0].starting) == 3
    for _ in range(10):
        s.take(0, 2.0)
    assert s.pools[0].want == 2 * GROWTH  # grows no further


def test_a_burst_beyond_the_spares_waits_for_a_start_from_scratch() -> None:
    t = make_trace([(0, 0, 1), (0, 0, 1), (0, 0, 1)], [256])
    cfg = Config(cold_start=1.0, nodes=1, max_nodes=1, spares=2, spare_start=0.01, placement="pack")
    r = simulate_trace(t, NoKeepAlive(), cfg)
    assert r.cold == 3
    assert r.sl == pytest.approx(0.01 + 0.01 + 1.0)
