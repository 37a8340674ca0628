"""Serving a gather: one node streams a file or a directory (as tar) back."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import AsyncIterator

from shoal.core.wire import fpb, pb
from shoal.errors import ShoalError
from shoal.tree.source import DEFAULT_CHUNK, open_source
from shoal.tree.spool import TransferError


async def fetch_chunks(request: fpb.FetchRequest, local: str) -> AsyncIterator[fpb.FetchChunk]:
    """The Fetch stream for request; local: its path on this agent's files root."""
    try:
        if not os.path.isabs(request.path):
            raise TransferError(f"path {request.path!r} is not absolute")
        src = open_source(
            local,
            recursive=request.recursive,
            chunk_size=request.chunk_size or DEFAULT_CHUNK,
        )
    except ShoalError as e:
        yield fpb.FetchChunk(error=pb.Result(state=pb.STATE_FAILED, reason=e.message))
        return
    # What the file holds when read (/proc files, a growing log), not its
    # stat size: the end says how much was sent and its hash.
    unknown = dataclasses.replace(src.meta, size=-1)
    yield fpb.FetchChunk(header=unknown.to_header(chunk_size=src.chunk_size))
    try:
        for chunk in src.chunks():
            yield fpb.FetchChunk(data=chunk)
    except OSError as e:
        yield fpb.FetchChunk(
            error=pb.Result(state=pb.STATE_FAILED, reason=f"reading {request.path}: {e}")
        )
        return
    yield fpb.FetchChunk(end=fpb.CopyEnd(xxh3_128=src.digest, size=src.sent))
