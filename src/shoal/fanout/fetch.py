"""The client side of `shoal gather`: fetch one path from every node into
DEST/<name>.<node> (as clush --rcopy), verified and atomic, several nodes at
a time.

Gather is many-to-one: the client's downlink is the limit, so nodes are
fetched directly (no relays) with at most `fan_in` transfers in flight.
Each arrives in a spool next to its destination and is renamed into place
only when its hash matches, so a node that fails mid-way leaves nothing.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import grpc

from shoal.core.grant import Signer, body_of
from shoal.core.wire import fpb, frpc, pb
from shoal.errors import UsageError
from shoal.tree.feed import Dialer
from shoal.tree.spool import Meta, Spool, TransferError

DEFAULT_FAN_IN = 8


@dataclass
class Gathered:
    node: str
    state: int
    reason: str = ""
    path: Path | None = None
    size: int = 0
    start_ns: int = 0
    end_ns: int = 0


def check_dest(dest: str) -> Path:
    """The local directory results go to; created if missing. Raises UsageError.
    With %h in it, each node's file goes to its own directory (made when it
    arrives), under its own name."""
    path = Path(dest)
    if "%h" in dest:
        return path
    if path.exists() and not path.is_dir():
        raise UsageError(f"{dest} exists and is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create {dest}: {e.strerror}") from e
    return path


def _landing(dest: Path, name: str, node: str) -> Path:
    """DEST/NAME.NODE, or DEST(%h = NODE)/NAME."""
    if "%h" not in str(dest):
        return dest / f"{name}.{node}"
    mine = Path(str(dest).replace("%h", node))
    try:
        mine.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise TransferError(f"cannot create {mine}: {e.strerror}") from e
    return mine / name


async def gather(
    nodes: list[pb.Subtree],
    path: str,
    dest: Path,
    dial: Dialer,
    *,
    recursive: bool = False,
    preserve: bool = False,
    fan_in: int = DEFAULT_FAN_IN,
    connect_timeout: float = 5.0,
    on_result: Callable[[Gathered], Awaitable[None]] | None = None,
    signer: Signer | None = None,
) -> list[Gathered]:
    """Fetch path from each node (node-list order is kept in the result)."""
    if not path.startswith("/"):
        raise UsageError(f"{path!r} must be an absolute path on the nodes")
    sem = asyncio.Semaphore(max(1, fan_in))

    async def one(node: pb.Subtree) -> Gathered:
        async with sem:
            req = fpb.FetchRequest(path=path, recursive=recursive)
            if signer is not None:
                req.signed.CopyFrom(signer.sign(pb.Subtree(name=node.name), body_of(req)))
            g = await _fetch(node, req, dest, dial, preserve, connect_timeout)
        if on_result is not None:
            await on_result(g)
        return g

    return list(await asyncio.gather(*(one(n) for n in nodes)))


async def _fetch(
    node: pb.Subtree,
    req: fpb.FetchRequest,
    dest: Path,
    dial: Dialer,
    preserve: bool,
    connect_timeout: float,
) -> Gathered:
    g = Gathered(node.name, pb.STATE_FAILED, start_ns=time.time_ns())
    try:
        channel = await dial(node, connect_timeout)
    except ConnectionError as e:
        g.state, g.reason = pb.STATE_UNREACHABLE, f"unreachable: {e}"
        g.end_ns = time.time_ns()
        return g
    spool: Spool | None = None
    try:
        call = frpc.FilesStub(channel).Fetch(req)
        while (msg := await call.read()) is not grpc.aio.EOF:
            kind = msg.WhichOneof("kind")
            if kind == "error":
                g.reason = msg.error.reason
                break
            if kind == "header":
                h = msg.header
                meta = Meta.from_header(h, preserve)
                spool = Spool(_landing(dest, h.name, node.name), meta, uuid.uuid4().hex)
            elif kind == "data" and spool is not None:
                await spool.write(msg.data)
            elif kind == "end" and spool is not None:
                await spool.finish(msg.end.xxh3_128)
                g.state, g.path, g.size = pb.STATE_OK, spool.target, spool.offset
                break
        else:
            g.reason = "the node closed the stream before the end"
    except TransferError as e:
        g.reason = e.message
    except grpc.aio.AioRpcError as e:
        g.state = pb.STATE_UNREACHABLE
        g.reason = f"lost: {e.details() or e.code().name}"
    finally:
        if spool is not None:
            if g.state != pb.STATE_OK:
                await spool.fail(g.reason or "aborted")
            spool.close()
    g.end_ns = time.time_ns()
    return g
