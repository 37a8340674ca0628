"""The pool's admission rules, driven directly (no HTTP: acquire/release only)."""

from __future__ import annotations

import asyncio

from shoal.gateway.config import BackendConfig, GatewaySettings
from shoal.gateway.metrics import Metrics
from shoal.gateway.pool import Backend, Pool
from shoal.gateway.upstream import Upstream


def make_pool(balance: str) -> Pool:
    s = GatewaySettings(balance=balance, queue_timeout=5)
    cfgs = [BackendConfig(url=f"http://b{i}", capacity=1) for i in range(2)]
    pool = Pool(s, cfgs, Upstream(1.0), Metrics())
    for b in pool.backends:
        b.live, b.languages = True, [["python3", "3"]]
    return pool


async def third_run(balance: str) -> tuple[Backend, Backend, Backend]:
    """b0 and b1 each take a run; b1's ends first; where does a third run go?"""
    pool = make_pool(balance)
    first = await pool.acquire("python3", set(), None)
    second = await pool.acquire("python3", set(), None)
    assert first is not None and second is not None and first is not second
    third = asyncio.ensure_future(pool.acquire("python3", set(), None))
    await asyncio.sleep(0.05)
    assert not third.done() and pool.waiters == 1  # both full: it waits at the gateway
    await pool.release(second)
    await asyncio.sleep(0.05)
    if not third.done():  # pinned to `first`'s backend: a free other one does not help
        await pool.release(first)
    got = await asyncio.wait_for(third, 1)
    assert got is not None
    return first, second, got


def test_p2c_takes_any_freed_slot() -> None:
    _, second, got = asyncio.run(third_run("p2c"))
    assert got is second


def test_round_robin_waits_for_its_own_backend_as_nginx_does() -> None:
    """The comparison policies choose without looking at load: round-robin's
    third run belongs to the first backend and waits for it."""
    first, _, got = asyncio.run(third_run("round-robin"))
    assert got is first


def test_release_serves_the_oldest_fitting_waiter_and_ejection_answers_the_stranded() -> None:
    """A line of runs for two languages: a freed slot goes to the oldest waiter its
    backend can serve, never to a newer one; a waiter whose language loses its
    last backend is answered (None: outcome 21) at once, not at queue_timeout."""

    async def go() -> None:
        pool = make_pool("p2c")
        b0, b1 = pool.backends
        b0.languages = [["python3", "3"], ["c", "gcc"]]
        b1.languages = [["python3", "3"]]
        pool.s.min_live, pool.s.eject_after = 0, 1
        held = [await pool.acquire("python3", set(), None) for _ in range(2)]
        line = [
            asyncio.ensure_future(pool.acquire(lang, set(), None))
            for lang in ("c", "python3", "python3")
        ]
        await asyncio.sleep(0.05)
        assert pool.waiters == 3
        b1_run = next(b for b in held if b is b1)
        await pool.release(b1_run)  # b1 cannot run C: the oldest python3 waiter gets it
        await asyncio.sleep(0.05)
        assert [f.done() for f in line] == [False, True, False]
        assert line[1].result() is b1
        pool.failure(b0)  # C's only backend is ejected while a C run waits
        await asyncio.sleep(0.05)
        assert line[0].done() and line[0].result() is None
        assert not line[2].done()  # python3 still has b1: it keeps waiting
        await pool.release(b1)
        assert await asyncio.wait_for(line[2], 1) is b1

    asyncio.run(go())
