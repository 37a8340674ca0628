"""Backends at run time: health (active checks, passive ejection with a
floor), capacity (a bounded wait queue at the gateway) and the choice of one.

Thresholds (all in [gateway]): a backend is ejected after ``eject_after``
consecutive failures (a failed GET languages, a connection error or a 5xx on
a run), unless that would leave fewer than ``min_live`` live backends. An
ejected backend is checked again after ``eject_for`` seconds and re-admitted
on its first good GET languages. With Redis, an ejection is shared: the key
``<prefix>eject:<url>`` lives for ``eject_for`` seconds.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from shoal.errors import UpstreamError
from shoal.gateway.balancer import Balancer
from shoal.gateway.config import BackendConfig, GatewaySettings
from shoal.gateway.metrics import Metrics
from shoal.gateway.shared import Shared, Unavailable
from shoal.gateway.upstream import Upstream


@dataclass
class Backend:
    cfg: BackendConfig
    languages: list[list[str]] = field(default_factory=list)
    live: bool = False
    failures: int = 0
    ejected_until: float = 0.0
    outstanding: int = 0
    ejections: int = 0
    runs: int = 0
    known_files: set[str] = field(default_factory=set)
    latency: float | None = None  # EWMA of successful run times (s)
    base: str = field(init=False)  # the API root URL, computed once (used per request)

    def __post_init__(self) -> None:
        self.base = self.cfg.base

    def observe(self, seconds: float, alpha: float = 0.2) -> None:
        self.latency = (
            seconds if self.latency is None else (alpha * seconds + (1 - alpha) * self.latency)
        )

    @property
    def url(self) -> str:
        return self.cfg.url

    @property
    def weight(self) -> float:
        return self.cfg.weight

    @property
    def capacity(self) -> int:
        return self.cfg.capacity

    def supports(self, lang: str, cputime: int = 0) -> bool:
        return cputime <= self.cfg.cputime_limit and any(pair[0] == lang for pair in self.languages)

    def headers(self) -> dict[str, str]:
        return {"X-API-KEY": self.cfg.api_key} if self.cfg.api_key else {}


class QueueFull(Exception):
    pass


@dataclass(eq=False)
class _Waiter:
    lang: str
    exclude: set[str]
    job: str | None
    fut: asyncio.Future[Backend | None]
    cputime: int = 0
    pinned: Backend | None = None  # load-oblivious policies: the backend picked on arrival


class Pool:
    def __init__(
        self,
        settings: GatewaySettings,
        backends: list[BackendConfig],
        client: Upstream,
        metrics: Metrics,
        shared: Shared | None = None,
    ) -> None:
        self.s = settings
        self.backends = [Backend(b) for b in backends]
        self.client = client
        self.metrics = metrics
        self.shared = shared
        self.balancer = Balancer(settings.balance)
        self._line: collections.deque[_Waiter] = collections.deque()
        self.affinity: dict[str, str] = {}
        # gateways sharing these backends through Redis; each takes an equal
        # share of every backend's slots, so together they never exceed them
        self.peers = 1
        self.me = uuid.uuid4().hex

    # ---- health -----------------------------------------------------------
    def live(self) -> list[Backend]:
        return [b for b in self.backends if b.live]

    async def check(self, b: Backend) -> None:
        try:
            r = await self.client.request(
                "GET", b.base + "/languages", headers=b.headers(), timeout=self.s.health_timeout
            )
            ok = r.status == 200 and isinstance(langs := json.loads(r.body), list)
        except (UpstreamError, ValueError):
            ok = False
        if ok:
            b.languages = [list(p) for p in langs if isinstance(p, list) and len(p) == 2]
            if await self._shared_ejected(b):
                return
            if not b.live:
                b.known_files.clear()  # it may have restarted with an empty cache
            b.live, b.failures = True, 0
            self.metrics.healthy.labels(b.url).set(1)
            self._dispatch()
        else:
            self.failure(b)

    async def check_all(self) -> None:
        now = time.monotonic()
        await asyncio.gather(
            *(self.check(b) for b in self.backends if b.live or now >= b.ejected_until)
        )

    async def health_loop(self) -> None:
        while True:
            await asyncio.sleep(self.s.health_interval)
            if self.shared is not None:  # Redis away: is it back? (a hung one
                await asyncio.gather(self.check_all(), self.shared.probe())  # delays no check)
            else:
                await self.check_all()
            await self._sync_shared()
            await self.sync_peers()

    def limit(self, b: Backend) -> int:
        """Runs this gateway may have in flight on ``b``: its share of the slots."""
        return max(1, b.capacity // self.peers)

    async def sync_peers(self) -> None:
        """Announce this gateway (a key that expires unless refreshed) and count
        the live ones. Redis away: keep the last count (and so this share)."""
        if self.shared is None:
            return
        p = self.s.redis_prefix
        ttl = int(max(3 * self.s.health_interval, 1.0) * 1000)

        async def count(r: Any) -> int:
            await r.set(f"{p}gw:{self.me}", "1", px=ttl)
            return sum([1 async for _ in r.scan_iter(match=f"{p}gw:*", count=200)])

        try:
            n = await self.shared.run(count)
        except Unavailable:
            return
        if max(1, n) != self.peers:
            self.peers = max(1, n)
            self._dispatch()  # a gateway left: more slots here

    async def leave(self) -> None:
        if self.shared is not None:
            with contextlib.suppress(Unavailable):
                await self.shared.run(lambda r: r.delete(f"{self.s.redis_prefix}gw:{self.me}"))

    def failure(self, b: Backend) -> None:
        b.failures += 1
        if not b.live:
            b.ejected_until = time.monotonic() + self.s.eject_for
            return
        if b.failures >= self.s.eject_after and len(self.live()) > self.s.min_live:
            b.live = False
            b.ejections += 1
            b.ejected_until = time.monotonic() + self.s.eject_for
            self.metrics.ejections.labels(b.url).inc()
            self.metrics.healthy.labels(b.url).set(0)
            self._dispatch()  # a waiter may have lost its last backend for its language
            if self.shared is not None:
                task = asyncio.ensure_future(self._share_ejection(b))
                task.add_done_callback(lambda t: t.exception())

    def success(self, b: Backend) -> None:
        b.failures = 0

    async def _share_ejection(self, b: Backend) -> None:
        ms = max(1, int(self.s.eject_for * 1000))
        assert self.shared is not None
        name = f"{self.s.redis_prefix}eject:{b.url}"
        with contextlib.suppress(Unavailable):  # Redis away: this gateway's ejection only
            await self.shared.run(lambda r: r.set(name, "1", px=ms))

    async def _shared_ejected(self, b: Backend) -> bool:
        if self.shared is None:
            return False
        try:
            name = f"{self.s.redis_prefix}eject:{b.url}"
            return bool(await self.shared.run(lambda r: r.exists(name)))
        except Unavailable:
            return False

    async def _sync_shared(self) -> None:
        """Take ejections made by other gateways (never below the floor)."""
        if self.shared is None:
            return
        for b in self.backends:
            if b.live and await self._shared_ejected(b) and len(self.live()) > self.s.min_live:
                b.live = False
                b.ejected_until = time.monotonic() + self.s.eject_for
                self.metrics.healthy.labels(b.url).set(0)
                self._dispatch()

    # ---- capacity ---------------------------------------------------------
    def _eligible(self, w: _Waiter, exclude: set[str]) -> list[Backend]:
        return [
            b
            for b in self.backends
            if b.live and b.supports(w.lang, w.cputime) and b.url not in exclude
        ]

    def cputime_limit(self, lang: str) -> int | None:
        """The largest cputime a live backend running ``lang`` allows; None
        when none runs it (to the client, an unknown language)."""
        limits = [b.cfg.cputime_limit for b in self.live() if b.supports(lang)]
        return max(limits) if limits else None

    async def acquire(
        self,
        lang: str,
        exclude: set[str],
        job: str | None,
        cputime: int = 0,
        timeout: float | None = None,
        retry: bool = False,
    ) -> Backend | None:
        """A backend with a free slot for ``lang`` (and a cputime limit of at
        least ``cputime``); waits up to ``timeout`` (queue_timeout by default).

        None when no live backend (outside ``exclude``) runs ``lang``, or when
        the wait timed out; raises QueueFull when the queue is full. Waiting
        runs are served first come, first served: a freed slot is handed to the
        oldest waiter that can use it, and a newcomer never jumps the line
        (with a wake-everyone condition the losers of each race went to the
        back, and the p99 was set by runs that lost many times). A ``retry``
        has waited its turn already: it goes to the head of the line, and a
        full queue does not refuse it.
        """
        w = _Waiter(lang, exclude, job, asyncio.get_running_loop().create_future(), cputime)
        got = self._choose(w)
        if got is None or (got is not False and (retry or not self._line)):
            return got if got is None else self._take(got, job)
        wait = self.s.queue_timeout if timeout is None else timeout
        if wait <= 0:
            return None
        if not retry and len(self._line) >= self.s.max_queue:
            raise QueueFull
        if retry:
            self._line.appendleft(w)
        else:
            self._line.append(w)
        self._dispatch(full=False)
        try:
            await asyncio.wait({w.fut}, timeout=wait)
        except BaseException:  # cancelled after being served: hand the slot on
            if w.fut.done() and not w.fut.cancelled() and (got := w.fut.result()) is not None:
                got.runs -= 1
                await self.release(got)
            raise
        finally:
            if not w.fut.done():  # timed out or cancelled: leave the line, unserved
                w.fut.cancel()
                self._line.remove(w)
                self.metrics.queue_depth.set(self.waiters)
        return None if w.fut.cancelled() else w.fut.result()

    @property
    def waiters(self) -> int:
        return len(self._line)

    def _choose(self, w: _Waiter) -> Backend | Literal[False] | None:
        """The backend a run would take now: None when nothing can ever serve
        it, False when it must wait (every eligible backend full or, for a
        load-oblivious policy, the one it was given)."""
        cands = self._eligible(w, w.exclude) or self._eligible(w, set())
        if not cands:
            return None
        free = [b for b in cands if b.outstanding < self.limit(b)]
        if self.balancer.oblivious:
            if w.pinned is None or all(b is not w.pinned for b in cands):
                w.pinned = self._affine(w.job, free) or self.balancer.pick(cands)
            return w.pinned if w.pinned.outstanding < self.limit(w.pinned) else False
        if not free:
            return False
        return self._affine(w.job, free) or self.balancer.pick(free)

    def _take(self, b: Backend, job: str | None) -> Backend:
        b.outstanding += 1
        b.runs += 1
        self.metrics.child(self.metrics.outstanding, b.url).set(b.outstanding)
        if job:
            self.affinity[job] = b.url
            if len(self.affinity) > 100_000:
                self.affinity.pop(next(iter(self.affinity)))
        return b

    def _free_anywhere(self) -> bool:
        return any(b.live and b.outstanding < self.limit(b) for b in self.backends)

    def _dispatch(self, full: bool = True) -> None:
        """Hand free slots to waiters, oldest first (synchronous: no await, so
        no waiter can time out half-served). After a release or an arrival
        (full=False) the scan stops once no live backend has a free slot: the
        rest of the line can only wait, and scanning every waiter on every
        release showed in the gateway's CPU profile. A change of liveness, languages
        or peers scans it all: it may also leave a waiter no backend can serve."""
        for w in list(self._line):
            if not full and not self._free_anywhere():
                break
            got = self._choose(w)
            if got is False:
                continue  # its backends are full; a later waiter may want another language
            self._line.remove(w)
            w.fut.set_result(got if got is None else self._take(got, w.job))
        self.metrics.queue_depth.set(self.waiters)

    def _affine(self, job: str | None, free: list[Backend]) -> Backend | None:
        if not job:
            return None
        url = self.affinity.get(job)
        return next((b for b in free if b.url == url), None)

    async def release(self, b: Backend) -> None:
        b.outstanding -= 1
        self.metrics.child(self.metrics.outstanding, b.url).set(b.outstanding)
        self._dispatch(full=False)
