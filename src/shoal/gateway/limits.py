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


class Limits:
    """``check`` answers None (go on) or an HTTP status: 403 or 429."""

    def __init__(self, keys: list[KeyConfig], redis: Any | None, prefix: str) -> None:
        self.keys = {k.key: k.runs_per_hour for k in keys}
        self.r = redis
        self.prefix = prefix + "rate:"
        self._counts: dict[tuple[str, int], int] = {}

    @property
    def enabled(self) -> bool:
        return bool(self.keys)

    def known(self, key: str | None) -> bool:
        return not self.keys or (key is not None and key in self.keys)

    async def charge_run(self, key: str | None) -> int | None:
        if not self.keys:
            return None
        if key is None or key not in self.keys:
            return 403
        limit = self.keys[key]
        if limit == 0:
            return None
        hour = int(time.time() // 3600)
        if self.r is not None:
            name = f"{self.prefix}{key_id(key)}:{hour}"
            n = int(await self.r.incr(name))
            if n == 1:
                await self.r.expire(name, 3700)
        else:
            n = self._counts.get((key, hour), 0) + 1
            self._counts = {k: v for k, v in self._counts.items() if k[1] == hour}
            self._counts[(key, hour)] = n
        return 429 if n > limit else None


def key_id(key: str) -> str:
    """What stands for an API key in Redis key names."""
    return hashlib.sha256(key.encode()).hexdigest()[:32]
