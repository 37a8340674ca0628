"""Request bodies: read under a size cap, parsed as JSON under a nesting bound.

A body over its cap is refused with 413 before it is buffered: a declared
Content-Length over the cap is refused without reading a byte of it, a
chunked body as soon as what came in passes the cap. Jobe sets no cap of its
own; the web server in front of it does (Apache's LimitRequestBody answers 413
Request Entity Too Large), so 413 is Jobe's nearest answer; the gateway's is a
JSON string, as all Jobe's errors are, and it closes the connection (the rest
of the body is never read).

JSON nested more deeply than PHP's ``json_decode`` accepts (512 levels) is
refused with 400: Jobe could not decode it either.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from shoal.errors import RequestError

MAX_DEPTH = 512  # PHP json_decode's default depth, as Jobe decodes


async def read_body(request: Request, limit: int, what: str) -> bytes:
    """The body, at most ``limit`` bytes; RequestError(413) beyond that."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError(
            413, f"{what}: request body of {int(declared)} bytes exceeds the limit of {limit} bytes"
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(413, f"{what}: request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(raw: bytes, what: str, invalid_status: int = 400) -> Any:
    """The decoded body; RequestError for one that is not JSON (``invalid_status``)
    or that nests more than MAX_DEPTH levels (400)."""
    too_deep = RequestError(400, f"{what}: JSON nested more than {MAX_DEPTH} levels deep")
    try:
        value = json.loads(raw)
    except RecursionError:
        raise too_deep from None
    except ValueError:  # UnicodeDecodeError included
        raise RequestError(invalid_status, "Body is not valid JSON") from None
    if _deeper_than(value, MAX_DEPTH):
        raise too_deep
    return value


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether arrays and objects nest more than ``limit`` levels (no recursion)."""
    if not isinstance(value, dict | list):
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if depth > limit:
            return True
        items = v.values() if isinstance(v, dict) else v
        stack.extend((x, depth + 1) for x in items if isinstance(x, dict | list))
    return False
