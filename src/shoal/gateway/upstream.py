"""HTTP to the Jobe backends: one keep-alive connection pool, aiohttp.

httpx cost ~1.1 ms of the gateway's event loop per proxied run (most of the
gateway's CPU); aiohttp's C parser and leaner pool cost a fraction of that.
Every transport failure (refused, reset, timed out, a truncated answer) is
one exception, UpstreamError, which the caller turns into a retry elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp


class UpstreamError(Exception):
    pass


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes


class Upstream:
    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Inside the event loop (aiohttp binds its session to the running loop)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=30),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                auto_decompress=False,
                trust_env=False,  # never route student code through an env proxy
            )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> Answer:
        await self.start()
        assert self._session is not None
        tmo = self._session.timeout if timeout is None else aiohttp.ClientTimeout(total=timeout)
        try:
            async with self._session.request(
                method, url, data=body, headers=headers, timeout=tmo
            ) as r:
                return Answer(r.status, await r.read())
        except (aiohttp.ClientError, TimeoutError) as e:
            raise UpstreamError(f"{type(e).__name__}: {e}") from e
