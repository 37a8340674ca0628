"""Request bodies: read under a size cap.

A body over its cap is refused with 413 before it is buffered: a declared
Content-Length over the cap is refused without reading a byte of it, a
chunked body as soon as what came in passes the cap. Jobe sets no cap of its
own; the web server in front of it does (Apache's LimitRequestBody answers 413
Request Entity Too Large), so 413 is Jobe's nearest answer; the gateway's is a
JSON string, as all Jobe's errors are, and it closes the connection (the rest
of the body is never read). What the body says is shoal.gateway.jobe's to judge.
"""

from __future__ import annotations

from starlette.requests import Request

from shoal.errors import RequestError


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
