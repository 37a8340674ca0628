"""Talk to the controller over HTTPS with the client certificate in $SHOAL_HOME/tls."""

from __future__ import annotations

import json
from typing import Any

from shoal.errors import ServiceError, UsageError


def request(
    method: str, path: str, controller: str | None, insecure: bool = False, **kw: Any
) -> Any:
    import httpx

    from shoal.core.config import Settings
    from shoal.core.tls import CLIENT_NAME, Identity, client_context

    settings = Settings.load(controller_url=controller)
    url = settings.controller_url
    verify: Any = True
    if url.startswith("https://"):
        verify = client_context(Identity.in_dir(settings.tls_dir, CLIENT_NAME))
    elif not insecure:
        raise UsageError(f"{url} is plain HTTP: pass --insecure to talk to it without TLS")
    try:
        with httpx.Client(base_url=url, verify=verify, timeout=30, trust_env=False) as c:
            r = c.request(method, path, **kw)
    except httpx.HTTPError as e:
        raise ServiceError(f"controller {url} unreachable: {type(e).__name__}: {e}") from e
    if r.status_code >= 400:
        try:
            detail = r.json().get("detail")
        except (ValueError, AttributeError):
            detail = r.text[:200]
        if isinstance(detail, list):  # pydantic validation
            detail = "; ".join(
                f"{'.'.join(str(x) for x in d.get('loc', [])[1:])}: {d.get('msg')}" for d in detail
            )
        # 4xx: the request was wrong (or not allowed): exit 2, as for any user mistake
        exc = UsageError if r.status_code < 500 else ServiceError
        raise exc(f"controller: {detail}")
    return r.json()


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2))


def ago(iso: str | None) -> str:
    import datetime as dt

    if not iso:
        return "-"
    s = (dt.datetime.now(dt.UTC) - dt.datetime.fromisoformat(iso)).total_seconds()
    if s < 120:
        return f"{s:.0f}s ago"
    if s < 7200:
        return f"{s / 60:.0f}m ago"
    return f"{s / 3600:.1f}h ago"


def parse_since(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        if text[-1] in units:
            return float(text[:-1]) * units[text[-1]]
        return float(text)
    except (ValueError, IndexError) as e:
        raise UsageError(f"--since: expected e.g. 30m, 1h, 2d, got {text!r}") from e
