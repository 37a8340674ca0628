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


def test_a_retried_run_goes_to_the_head_of_the_line() -> None:
    """#14 item 8: a run cut mid-flight and retried has waited its turn: the next
    free slot is its, before runs that came later (and a full queue does not
    refuse it)."""

    async def go() -> None:
        pool = make_pool("p2c")
        pool.s.max_queue = 2
        held = [await pool.acquire("python3", set(), None) for _ in range(2)]
        line = [asyncio.ensure_future(pool.acquire("python3", set(), None)) for _ in range(2)]
        await asyncio.sleep(0.05)
        assert pool.waiters == 2  # the queue is full
        retried = asyncio.ensure_future(pool.acquire("python3", set(), None, retry=True))
        await asyncio.sleep(0.05)
        assert pool.waiters == 3 and not retried.done()
        await pool.release(held[0])
        await asyncio.sleep(0.05)
        assert retried.done() and retried.result() is held[0]
        assert not any(f.done() for f in line)
        for b in (held[1], held[0]):
            await pool.release(b)
        await asyncio.wait_for(asyncio.gather(*line), 1)

    asyncio.run(go())


def test_a_retry_with_no_queue_time_left_is_answered_at_once() -> None:
    """#14 item 8: the queue time is one budget for all of a run's attempts; a
    retry that has none left takes a free slot or gets outcome 21 (None) at
    once, never a second wait."""

    async def go() -> None:
        pool = make_pool("p2c")
        held = [await pool.acquire("python3", set(), None) for _ in range(2)]
        got = await pool.acquire("python3", set(), None, timeout=0.0, retry=True)
        assert got is None and pool.waiters == 0
        await pool.release(held[1])
        got = await pool.acquire("python3", set(), None, timeout=0.0, retry=True)
        assert got is held[1]
        await pool.release(held[0])
        await pool.release(held[1])

    asyncio.run(go())


def test_a_run_goes_only_where_its_cputime_is_allowed() -> None:
    async def go() -> None:
        s = GatewaySettings(queue_timeout=5)
        cfgs = [
            BackendConfig(url="http://short", cputime_limit=30),
            BackendConfig(url="http://long"),
        ]
        pool = Pool(s, cfgs, Upstream(1.0), Metrics())
        for b in pool.backends:
            b.live, b.languages = True, [["python3", "3"]]
        assert pool.cputime_limit("python3") == 120 and pool.cputime_limit("c") is None
        for _ in range(10):
            b = await pool.acquire("python3", set(), None, cputime=60)
            assert b is not None and b.url == "http://long"
            await pool.release(b)

    asyncio.run(go())
