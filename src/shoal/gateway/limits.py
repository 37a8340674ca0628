"""API keys (X-API-KEY) and per-key runs per hour, in memory or in Redis.

In Redis a key's counter is ``<prefix>rate:<id>:<hour>``, where ``<id>`` is the
first 32 hex digits of the key's SHA-256, never the key itself: whoever can
list Redis's keys cannot read the clients' keys there.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from shoal.gateway.config import KeyConfig
from shoal.gateway.shared import Shared, Unavailable


class Limits:
    """``charge_run`` answers None (go on) or an HTTP status: 403 or 429.

    With Redis the count of a key's hour is shared by every gateway. While
    Redis is away each gateway counts alone, on from the last count it saw,
    and hands its runs back (INCRBY) when Redis returns (a Redis that restarted
    empty gets at least the counts this gateway saw): during an outage N
    gateways may together let a key run up to N times what was left of its hour.
    """

    def __init__(self, keys: list[KeyConfig], shared: Shared | None, prefix: str) -> None:
        self.keys = {k.key: k.runs_per_hour for k in keys}
        self.shared = shared
        self.prefix = prefix + "rate:"
        self._hour = 0
        # in memory, the counts; with Redis, the last count seen (plus the runs
        # counted here while it is away), and those runs, to hand back
        self._counts: dict[str, int] = {}
        self._pending: dict[str, int] = {}
        if shared is not None:
            shared.on_recover.append(self.hand_back)

    @property
    def enabled(self) -> bool:
        return bool(self.keys)

    def known(self, key: str | None) -> bool:
        return not self.keys or (key is not None and key in self.keys)

    def _name(self, key: str, hour: int) -> str:
        return f"{self.prefix}{key_id(key)}:{hour}"

    def _this_hour(self) -> int:
        hour = int(time.time() // 3600)
        if hour != self._hour:  # a new hour: every count starts again
            self._hour, self._counts, self._pending = hour, {}, {}
        return hour

    async def charge_run(self, key: str | None) -> int | None:
        if not self.keys:
            return None
        if key is None or key not in self.keys:
            return 403
        limit = self.keys[key]
        if limit == 0:
            return None
        hour = self._this_hour()
        if self.shared is not None:
            name = self._name(key, hour)
            try:
                n = await self.shared.run(lambda r: _incr(r, name, 1))
            except Unavailable:
                self._pending[key] = self._pending.get(key, 0) + 1
            else:
                self._counts[key] = n
                return 429 if n > limit else None
        n = self._counts[key] = self._counts.get(key, 0) + 1
        return 429 if n > limit else None

    async def hand_back(self) -> str:
        """Redis is back: add the runs counted here meanwhile to its counts, and
        if it came back empty (restarted), give it at least the counts seen here."""
        hour = self._this_hour()
        total = 0
        assert self.shared is not None
        for key in set(self._pending) | set(self._counts):
            n = self._pending.get(key, 0)
            name = self._name(key, hour)
            got = await _incr(self.shared.r, name, n)
            if got < self._counts.get(key, 0):
                got = await _incr(self.shared.r, name, self._counts[key] - got)
            self._counts[key] = got
            self._pending.pop(key, None)  # only once Redis has it
            total += n
        return f"{total} runs counted here meanwhile added to the rate counts" if total else ""


async def _incr(r: Any, name: str, n: int) -> int:
    """INCRBY and the expiry in one round trip (the name holds the hour)."""
    async with r.pipeline(transaction=True) as p:
        p.incrby(name, n)
        p.expire(name, 3700)
        got = await p.execute()
    return int(got[0])


def key_id(key: str) -> str:
    """What stands for an API key in Redis key names."""
    return hashlib.sha256(key.encode()).hexdigest()[:32]
