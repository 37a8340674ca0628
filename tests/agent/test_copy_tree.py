"""Copy through a chain of real gRPC Files services on real sockets.

Each node has its own transfer root, as local agents sharing one disk do. The
relay is killed mid-transfer to check adoption and resume from the offset the
grandchild reached. (End-to-end tests through agent processes and the CLI
live in tests/cli/test_copy.py.)
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from shoal.agent.files import FilesService
from shoal.agent.gate import Gate
from shoal.core.wire import fpb, frpc, pb
from shoal.fanout.broadcast import SourceOrigin
from shoal.tree.feed import Feed
from shoal.tree.source import open_source


@dataclass
class Node:
    name: str
    port: int
    root: Path
    server: grpc.aio.Server
    service: FilesService


async def dial(tree: pb.Subtree, timeout: float) -> grpc.aio.Channel:
    ch = grpc.aio.insecure_channel(tree.address)
    try:
        await asyncio.wait_for(ch.channel_ready(), timeout)
    except TimeoutError as e:
        await ch.close()
        raise ConnectionError(f"{tree.address} did not answer") from e
    return ch


@pytest.fixture
async def nodes(tmp_path: Path) -> AsyncIterator[dict[str, Node]]:
    out: dict[str, Node] = {}
    for i in range(1, 6):
        name = f"n{i}"
        root = tmp_path / name
        (root / "dest").mkdir(parents=True)
        service = FilesService(dial, root, Gate(name, None))
        server = grpc.aio.server()
        frpc.add_FilesServicer_to_server(service, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        out[name] = Node(name, port, root, server, service)
    yield out
    for n in out.values():
        await n.server.stop(0)


def tree(nodes: dict[str, Node], name: str, *children: pb.Subtree) -> pb.Subtree:
    return pb.Subtree(name=name, address=f"127.0.0.1:{nodes[name].port}", children=children)


async def broadcast(
    src: Path,
    roots: list[pb.Subtree],
    dest: str = "/dest/",
    *,
    chunk: int = 64 * 1024,
    on_progress: object = None,
) -> dict[str, fpb.CopyEvent]:
    source = open_source(str(src), recursive=src.is_dir(), chunk_size=chunk)
    origin = SourceOrigin(source)
    m = source.meta
    header = fpb.CopyHeader(
        transfer_id=uuid.uuid4().hex,
        dest=dest,
        name=m.name,
        kind=m.kind,
        size=m.size,
        mode=m.mode,
        mtime_ns=m.mtime_ns,
        chunk_size=chunk,
        connect_timeout=2.0,
    )
    out: asyncio.Queue[fpb.CopyEvent] = asyncio.Queue(16)
    feed = Feed(header=header, origin=origin, dial=dial, out=out)
    producer = asyncio.create_task(origin.produce())
    for r in roots:
        feed.start(r)
    results: dict[str, fpb.CopyEvent] = {}

    async def collect() -> None:
        while True:
            ev = await out.get()
            results[ev.event.node] = ev
            if callable(on_progress):
                await on_progress(results)

    collector = asyncio.create_task(collect())
    await feed.wait()
    while not out.empty():
        await asyncio.sleep(0.01)
    collector.cancel()
    await producer
    origin.close()
    return results


def states(results: dict[str, fpb.CopyEvent]) -> dict[str, int]:
    return {n: ev.event.result.state for n, ev in results.items()}


def leftovers(root: Path) -> list[str]:
    return [p.name for p in root.rglob("*") if "shoal" in p.name]


async def test_chain_pipelines_to_every_node(nodes: dict[str, Node], tmp_path: Path) -> None:
    src = tmp_path / "payload.bin"
    src.write_bytes(os.urandom(3_000_000))
    t = tree(
        nodes, "n1", tree(nodes, "n2", tree(nodes, "n3")), tree(nodes, "n4", tree(nodes, "n5"))
    )
    results = await broadcast(src, [t])
    assert states(results) == {f"n{i}": pb.STATE_OK for i in range(1, 6)}
    for n in nodes.values():
        assert (n.root / "dest" / "payload.bin").read_bytes() == src.read_bytes()
        assert leftovers(n.root) == []


async def test_directory_broadcast(nodes: dict[str, Node], tmp_path: Path) -> None:
    src = tmp_path / "dataset"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "f").write_bytes(os.urandom(200_000))
    (src / "ln").symlink_to("sub/f")
    results = await broadcast(src, [tree(nodes, "n1", tree(nodes, "n2"))])
    assert states(results) == {"n1": pb.STATE_OK, "n2": pb.STATE_OK}
    for name in ("n1", "n2"):
        got = nodes[name].root / "dest" / "dataset"
        assert (got / "sub" / "f").read_bytes() == (src / "sub" / "f").read_bytes()
        assert os.readlink(got / "ln") == "sub/f"


async def test_unwritable_relay_fails_alone_and_its_children_are_adopted(
    nodes: dict[str, Node], tmp_path: Path
) -> None:
    src = tmp_path / "f"
    src.write_bytes(os.urandom(500_000))
    (nodes["n2"].root / "dest").rmdir()  # n2's destination does not exist
    t = tree(nodes, "n1", tree(nodes, "n2", tree(nodes, "n3"), tree(nodes, "n4")))
    results = await broadcast(src, [t])
    assert states(results) == {
        "n1": pb.STATE_OK,
        "n2": pb.STATE_FAILED,
        "n3": pb.STATE_OK,
        "n4": pb.STATE_OK,
    }
    assert "does not exist" in results["n2"].event.result.reason
    for name in ("n1", "n3", "n4"):
        assert (nodes[name].root / "dest" / "f").read_bytes() == src.read_bytes()


async def test_dead_relay_is_reported_and_its_subtree_resumes(
    nodes: dict[str, Node], tmp_path: Path
) -> None:
    src = tmp_path / "big"
    src.write_bytes(os.urandom(8_000_000))
    n2 = nodes["n2"]
    t = tree(nodes, "n1", tree(nodes, "n2", tree(nodes, "n3", tree(nodes, "n4"))))
    killed = False

    async def killer() -> None:
        nonlocal killed
        part = nodes["n3"].root / "dest"
        for _ in range(2000):
            spools = [p for p in part.iterdir() if p.name.endswith(".shoal-part")]
            if spools and spools[0].stat().st_size > 1_000_000:
                await n2.server.stop(0)  # the relay dies mid-transfer
                killed = True
                return
            await asyncio.sleep(0.005)

    k = asyncio.create_task(killer())
    results = await broadcast(src, [t], chunk=32 * 1024)
    await k
    assert killed, "the relay finished before it could be killed; the test proved nothing"
    st = states(results)
    assert st["n2"] == pb.STATE_UNREACHABLE
    assert (st["n1"], st["n3"], st["n4"]) == (pb.STATE_OK,) * 3
    for name in ("n1", "n3", "n4"):
        assert (nodes[name].root / "dest" / "big").read_bytes() == src.read_bytes()
        assert leftovers(nodes[name].root) == []


async def test_fetch_streams_a_file_back(nodes: dict[str, Node]) -> None:
    (nodes["n1"].root / "dest" / "log").write_text("hello\n")
    ch = grpc.aio.insecure_channel(f"127.0.0.1:{nodes['n1'].port}")
    stub = frpc.FilesStub(ch)
    kinds = [c.WhichOneof("kind") async for c in stub.Fetch(fpb.FetchRequest(path="/dest/log"))]
    assert kinds == ["header", "data", "end"]
    missing = [c async for c in stub.Fetch(fpb.FetchRequest(path="/dest/nope"))]
    assert missing[0].error.state == pb.STATE_FAILED and "no such file" in missing[0].error.reason
    await ch.close()


async def _start_then_stop(
    nodes: dict[str, Node], tmp_path: Path, *, abort: bool
) -> tuple[Feed, list[Path]]:
    src = tmp_path / "big"
    src.write_bytes(os.urandom(20_000_000))
    source = open_source(str(src), chunk_size=16 * 1024)
    origin = SourceOrigin(source)
    m = source.meta
    header = fpb.CopyHeader(
        transfer_id=uuid.uuid4().hex,
        dest="/dest/",
        name=m.name,
        kind=m.kind,
        size=m.size,
        chunk_size=16 * 1024,
        connect_timeout=2.0,
    )
    feed = Feed(header=header, origin=origin, dial=dial, out=asyncio.Queue(16))
    producer = asyncio.create_task(origin.produce())
    feed.start(tree(nodes, "n1", tree(nodes, "n2")))
    dest2 = nodes["n2"].root / "dest"
    for _ in range(2000):
        if any(p.stat().st_size > 100_000 for p in dest2.iterdir()):
            break
        await asyncio.sleep(0.005)
    spools = [p for n in ("n1", "n2") for p in (nodes[n].root / "dest").iterdir()]
    assert spools, "no spool appeared: nothing was being transferred"
    if abort:
        await feed.abort("interrupted")
    else:
        for t in list(feed.tasks):
            t.cancel()  # the client vanishes without a word
    await feed.wait()
    producer.cancel()
    return feed, spools


async def _gone(paths: list[Path]) -> bool:
    """True once every path is gone; a generous deadline for loaded machines."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if not any(p.exists() for p in paths):
            return True
        await asyncio.sleep(0.02)
    return False


async def test_ctrl_c_abort_removes_every_spool_at_once(
    nodes: dict[str, Node], tmp_path: Path
) -> None:
    _, spools = await _start_then_stop(nodes, tmp_path, abort=True)
    assert await _gone(spools), f"left behind: {[p for p in spools if p.exists()]}"
    assert not (nodes["n2"].root / "dest" / "big").exists()


async def test_vanished_client_spools_expire_after_the_adoption_window(
    nodes: dict[str, Node], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shoal.agent.files as files

    monkeypatch.setattr(files, "ADOPT_WINDOW", 0.5)
    _, spools = await _start_then_stop(nodes, tmp_path, abort=False)
    assert await _gone(spools), f"left behind: {[p for p in spools if p.exists()]}"


async def test_gather_lands_one_verified_copy_per_node(
    nodes: dict[str, Node], tmp_path: Path
) -> None:
    from shoal.fanout.fetch import check_dest, gather

    for i, name in enumerate(("n1", "n2", "n3")):
        (nodes[name].root / "dest" / "bench.log").write_text(f"log of {name}\n" * (i + 1))
        (nodes[name].root / "dest" / "d").mkdir()
        (nodes[name].root / "dest" / "d" / "x").write_text(name)
    out = check_dest(str(tmp_path / "logs"))
    targets = [tree(nodes, n) for n in ("n1", "n2", "n3")]
    targets.append(pb.Subtree(name="ghost", address="127.0.0.1:1"))
    got = await gather(targets, "/dest/bench.log", out, dial, fan_in=2, connect_timeout=0.5)
    assert [(g.node, g.state) for g in got] == [
        ("n1", pb.STATE_OK),
        ("n2", pb.STATE_OK),
        ("n3", pb.STATE_OK),
        ("ghost", pb.STATE_UNREACHABLE),
    ]
    assert (out / "bench.log.n2").read_text() == "log of n2\n" * 2
    dirs = await gather(targets[:2], "/dest/d", out, dial, recursive=True)
    assert [g.state for g in dirs] == [pb.STATE_OK, pb.STATE_OK]
    assert (out / "d.n1" / "x").read_text() == "n1"
    missing = await gather(targets[:1], "/dest/nope", out, dial)
    assert missing[0].state == pb.STATE_FAILED and "no such file" in missing[0].reason
    assert sorted(p.name for p in out.iterdir()) == [
        "bench.log.n1",
        "bench.log.n2",
        "bench.log.n3",
        "d.n1",
        "d.n2",
    ]


def test_gather_destination_that_is_a_file_is_refused(tmp_path: Path) -> None:
    from shoal.errors import UsageError
    from shoal.fanout.fetch import check_dest

    (tmp_path / "logs").write_text("I am a file")
    with pytest.raises(UsageError, match="not a directory"):
        check_dest(str(tmp_path / "logs"))
