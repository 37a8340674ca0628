"""copy and gather as library calls (see fanout/api.py for the conventions).

from shoal.fanout import copy, gather
copy("cn[1-64]", "big.tar", "/root/")
for node in gather("cn[1-64]", "/var/log/syslog", "logs"):
    print(node.name, node.path)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypedDict, Unpack

from shoal.core.config import Settings
from shoal.core.wire import pb
from shoal.errors import UsageError
from shoal.fanout.api import Job, NodeSets, OnEvent, recorder, targets_of
from shoal.fanout.broadcast import broadcast
from shoal.fanout.client import client_credentials, client_signer
from shoal.fanout.fetch import DEFAULT_FAN_IN, Gathered, check_dest
from shoal.fanout.fetch import gather as fetch_all
from shoal.fanout.report import Report
from shoal.tree.bulk import wire_mode
from shoal.tree.channels import Channels
from shoal.tree.source import DEFAULT_CHUNK, open_source
from shoal.tree.subtree import result_event

log = logging.getLogger("shoal.fanout")


class FileOptions(TypedDict, total=False):
    exclude: NodeSets | None
    settings: Settings | None
    on_event: OnEvent | None  # called with (event, node result) as nodes report
    recursive: bool  # a directory (as tar), symlinks kept
    preserve: bool  # mode and mtime, owner when root
    pick: int | None  # that many nodes of the set, at random


class CopyOptions(FileOptions, total=False):
    delete: bool  # a directory replaces the destination's (mirror) instead of merging
    width: int  # tree width, default 2 (1: a pipelined chain)
    chunk_size: int
    stall_timeout: float  # seconds a child may take nothing before it is adopted around
    on_progress: Callable[[int], None] | None  # bytes every root has been sent
    bulk: str  # data plane: "aead" (default), "mac" (plain bytes, tagged), "grpc"


class GatherOptions(FileOptions, total=False):
    fan_in: int  # nodes fetched at once


def copy_job(nodes: NodeSets, source: str | Path, dest: str, **opts: Unpack[CopyOptions]) -> Job:
    width = opts.get("width", 2)
    stall_timeout = opts.get("stall_timeout", 10.0)
    if width < 1:
        raise UsageError("the tree width must be at least 1")
    if not stall_timeout > 0:
        raise UsageError("the stall time-out must be positive")
    if not dest.startswith("/"):
        raise UsageError(f"destination {dest!r} must be an absolute path on the nodes")
    src = open_source(
        str(source),
        recursive=opts.get("recursive", False),
        preserve=opts.get("preserve", False),
        mirror=opts.get("delete", False),
        chunk_size=opts.get("chunk_size", DEFAULT_CHUNK),
    )
    s = opts.get("settings") or Settings.load()
    try:
        bulk = wire_mode(opts.get("bulk") or s.bulk)
    except ValueError as e:
        raise UsageError(str(e)) from None
    targets = targets_of(nodes, opts.get("exclude"), s, opts.get("pick"))
    creds, signer = client_credentials(s), client_signer(s)
    report = Report(targets.nodes, 0)
    on = recorder(report, opts.get("on_event"))
    if bulk == "mac":
        log.warning(
            "PLAIN TEXT: the copy's bytes cross the network unencrypted (--bulk mac),"
            " tagged against tampering; use it on a trusted cluster network only"
        )

    async def work() -> None:
        await broadcast(
            src,
            dest,
            targets,
            width=width,
            credentials=creds,
            connect_timeout=s.connect_timeout,
            on_event=on,
            on_progress=opts.get("on_progress"),
            stall_timeout=stall_timeout,
            signer=signer,
            keepalive=s.keepalive,
            bulk=bulk,
        )
        report.finish("no result received")

    return Job(report, work, total=src.meta.size if src.meta.size >= 0 else None)


async def copy_async(
    nodes: NodeSets, source: str | Path, dest: str, **opts: Unpack[CopyOptions]
) -> Report:
    """Broadcast a file (or, recursive, a directory) to dest on every node
    through the tree, verified and atomic on each."""
    return await copy_job(nodes, source, dest, **opts).run()


def copy(nodes: NodeSets, source: str | Path, dest: str, **opts: Unpack[CopyOptions]) -> Report:
    """Blocking form of copy_async."""
    return copy_job(nodes, source, dest, **opts).run_blocking()


def gather_job(nodes: NodeSets, path: str, dest: str | Path, **opts: Unpack[GatherOptions]) -> Job:
    fan_in = opts.get("fan_in", DEFAULT_FAN_IN)
    if fan_in < 1:
        raise UsageError("fan-in must be at least 1")
    if not path.startswith("/"):
        raise UsageError(f"{path!r} must be an absolute path on the nodes")
    out = check_dest(str(dest))
    s = opts.get("settings") or Settings.load()
    targets = targets_of(nodes, opts.get("exclude"), s, opts.get("pick"))
    creds, signer = client_credentials(s), client_signer(s)
    report = Report(targets.nodes, 0)
    on_event = opts.get("on_event")

    async def on_result(g: Gathered) -> None:
        ev = result_event(g.node, g.state, g.reason, g.start_ns)
        r = report.add(ev)
        if r is not None:
            r.path = g.path
            if on_event is not None:
                on_event(ev, r)

    async def work() -> None:
        chans = Channels(creds, s.keepalive)
        trees = [pb.Subtree(name=n, address=targets.addresses[n]) for n in targets.nodes]
        report.sent_ns = time.monotonic_ns()
        try:
            await fetch_all(
                trees,
                path,
                out,
                chans.get,
                recursive=opts.get("recursive", False),
                preserve=opts.get("preserve", False),
                fan_in=fan_in,
                connect_timeout=s.connect_timeout,
                on_result=on_result,
                signer=signer,
            )
        finally:
            await chans.close()
        report.finish("no result received")

    return Job(report, work)


async def gather_async(
    nodes: NodeSets, path: str, dest: str | Path, **opts: Unpack[GatherOptions]
) -> Report:
    """Fetch path from every node into dest/NAME.NODE (each node's ``path``)."""
    return await gather_job(nodes, path, dest, **opts).run()


def gather(nodes: NodeSets, path: str, dest: str | Path, **opts: Unpack[GatherOptions]) -> Report:
    """Blocking form of gather_async."""
    return gather_job(nodes, path, dest, **opts).run_blocking()
