"""Push metric points to Atlassian Statuspage.

Documented endpoint: POST {base}/v1/pages/{page_id}/metrics/{metric_id}/data
with ``Authorization: OAuth <api key>`` and body
``{"data": {"timestamp": <unix seconds>, "value": <float>}}``.
The key comes from SHOAL_CONTROLLER_STATUSPAGE_API_KEY or a file and is never
logged. 429 and 5xx are retried with exponential back-off; a point already
accepted for (metric, timestamp) is never sent again.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from shoal.errors import ConfigError, ServiceError


class StatuspagePusher:
    def __init__(
        self,
        base_url: str,
        page_id: str,
        api_key: str,
        retries: int = 5,
        backoff: float = 0.5,
        verify: Any = True,
    ) -> None:
        if not page_id or not api_key:
            raise ConfigError("statuspage needs a page id and an API key")
        self.base = base_url.rstrip("/")
        self.page = page_id
        self._key = api_key
        self.retries = retries
        self.backoff = backoff
        self.verify = verify
        self.sent: set[tuple[str, int]] = set()

    def __repr__(self) -> str:  # never show the key
        return f"StatuspagePusher(page={self.page!r}, key=***)"

    async def push(self, metric_id: str, timestamp: float, value: float) -> bool:
        """Send one point; False when it was already sent."""
        import httpx

        ts = int(timestamp)
        if (metric_id, ts) in self.sent:
            return False
        url = f"{self.base}/v1/pages/{self.page}/metrics/{metric_id}/data"
        body = {"data": {"timestamp": ts, "value": float(value)}}
        headers = {"Authorization": f"OAuth {self._key}"}
        delay = self.backoff
        async with httpx.AsyncClient(timeout=10, verify=self.verify) as c:
            for attempt in range(self.retries + 1):
                try:
                    r = await c.post(url, json=body, headers=headers)
                except httpx.TransportError as e:
                    if attempt == self.retries:
                        raise ServiceError(f"statuspage unreachable: {type(e).__name__}") from e
                else:
                    if r.status_code < 300:
                        self.sent.add((metric_id, ts))
                        return True
                    if r.status_code != 429 and r.status_code < 500:
                        raise ServiceError(
                            f"statuspage refused metric {metric_id}: {r.status_code}"
                        )
                    if attempt == self.retries:
                        raise ServiceError(f"statuspage: {r.status_code} after {attempt} retries")
                    ra = r.headers.get("retry-after")
                    if ra and ra.isdigit():
                        delay = max(delay, float(ra))
                await asyncio.sleep(delay)
                delay *= 2
        return False


def read_key(env_value: str, key_file: Path | None) -> str:
    if env_value:
        return env_value
    if key_file is not None:
        try:
            return key_file.read_text().strip()
        except OSError as e:
            raise ConfigError(
                f"cannot read the statuspage key file {key_file}: {e.strerror}"
            ) from e
    raise ConfigError("no statuspage API key (SHOAL_CONTROLLER_STATUSPAGE_API_KEY or key file)")


def metric_map(text: str) -> dict[str, str]:
    """``running=abc123,down=def456``: snapshot key -> Statuspage metric id."""
    pairs = [kv.split("=", 1) for kv in text.split(",") if kv.strip()]
    bad = [kv[0] for kv in pairs if len(kv) != 2 or not kv[0].strip() or not kv[1].strip()]
    if bad:
        raise ConfigError(f"statuspage_metrics: {bad[0]!r} is not NAME=METRIC_ID")
    return {k.strip(): v.strip() for k, v in pairs}


async def push_snapshot(
    pusher: StatuspagePusher, mapping: dict[str, str], snap: dict[str, Any]
) -> dict[str, str]:
    """The `metrics` job action: one point per mapped metric of a snapshot
    (Registry.snapshot); per metric "ok" or why not."""
    import time

    now = time.time()
    out: dict[str, str] = {}
    for name, metric_id in mapping.items():
        value = snap["nodes"].get(name, snap.get(name))
        if value is None:
            out[name] = "failed: unknown metric"
            continue
        await pusher.push(metric_id, now, float(value))
        out[name] = "ok"
    return out
