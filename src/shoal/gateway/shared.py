"""The gateway's Redis (``--redis``), and what it does while Redis is away.

At start an unreachable Redis is a ServiceError (one line, exit 6): gateways
that believe they share state and do not are worse than one that says so.
While running, every Redis call goes through ``Shared.run``: the first that
fails marks Redis down and logs it once; from then on no call is tried (a
request never waits for a dead Redis) and callers use their local fallback,
until the health loop's ``probe`` finds it back, logs that once and runs the
recovery hooks (hand back the run counts and files taken meanwhile).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from shoal.errors import ConfigError, ServiceError

T = TypeVar("T")
log = logging.getLogger("shoal.gateway")
TIMEOUT = 2.0  # s for a connect or a command: a stopped Redis costs one wait, once


class Unavailable(Exception):
    """Redis is down: use the local fallback."""


def redact(url: str) -> str:
    """The URL without its password (never logged)."""
    u = urlsplit(url)
    if u.password is None and u.username is None:
        return url
    host = u.hostname or ""
    netloc = f"***@{host}" + (f":{u.port}" if u.port else "")
    return urlunsplit((u.scheme, netloc, u.path, u.query, u.fragment))


def client(url: str) -> Any:
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    # one immediate retry on a connection error: a pooled connection Redis
    # closed (it restarted) is replaced at once; no backoff sleeps in a
    # request's path, and a time-out (a hung Redis) is not waited for twice
    return aioredis.Redis.from_url(
        url,
        socket_connect_timeout=TIMEOUT,
        socket_timeout=TIMEOUT,
        retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
    )


async def check(url: str) -> None:
    """Raise ServiceError (exit 6) when Redis at ``url`` does not answer PING."""
    try:
        r = client(url)
    except ValueError as e:  # a malformed URL: the configuration's mistake (exit 5)
        raise ConfigError(f"Redis URL {redact(url)!r} is not valid: {e}") from None
    try:
        await r.ping()
    except Exception as e:
        raise ServiceError(f"Redis at {redact(url)} cannot be reached: {_why(e)}") from None
    finally:
        await r.aclose()


def _why(e: BaseException) -> str:
    return str(e).splitlines()[0] if str(e) else type(e).__name__


class Shared:
    def __init__(self, url: str) -> None:
        self.r = client(url)
        self.where = redact(url)
        self.up = True
        self.down_since = 0.0
        self.on_recover: list[Callable[[], Awaitable[str]]] = []

    async def run(self, op: Callable[[Any], Awaitable[T]]) -> T:
        """``op(redis)``, or Unavailable when Redis is down or fails now."""
        if not self.up:
            raise Unavailable
        try:
            return await op(self.r)
        except (RedisError, OSError, TimeoutError) as e:  # a bug of ours is not an outage
            self._down(e)
            raise Unavailable from None

    def _down(self, e: BaseException) -> None:
        if not self.up:
            return
        self.up = False
        self.down_since = time.monotonic()
        log.warning(
            "Redis at %s unreachable (%s): going on alone until it is back (rate limits "
            "counted by this gateway only, files kept in files_dir, no shared ejections, "
            "slot share kept as it was)",
            self.where,
            _why(e),
        )

    async def probe(self) -> None:
        """When down: PING; when it answers, recover (once) and run the hooks."""
        if self.up:
            return
        try:
            await self.r.ping()
        except (RedisError, OSError, TimeoutError):
            return
        self.up = True
        done = []
        for hook in self.on_recover:
            try:
                done.append(await hook())
            except (RedisError, OSError, TimeoutError, Unavailable) as e:
                self._down(e)  # down again half-way: the next probe hands back the rest
                return
        away = time.monotonic() - self.down_since
        what = "; ".join(d for d in done if d)
        log.warning(
            "Redis at %s reachable again after %.1f s: shared state resumed%s",
            self.where,
            away,
            f" ({what})" if what else "",
        )

    async def close(self) -> None:
        await self.r.aclose()
