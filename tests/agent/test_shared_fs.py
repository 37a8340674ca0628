"""Nodes that share a filesystem copy to one destination: written once, every
node OK. Real agent processes: K agents in one process (`--per-process`), and
separate agent processes on this machine's filesystem, as the non-root local
cluster's agents share /tmp."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from agentproc import Agents, shoal

from shoal.agent.files import FilesService
from shoal.agent.gate import Gate
from shoal.core.wire import fpb, frpc, pb
from shoal.fanout.broadcast import SourceOrigin
from shoal.tree.claim import claim, label, open_existing, part_path
from shoal.tree.feed import Feed
from shoal.tree.source import open_source

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="private /tmp per process needs root")
SHOAL = [sys.executable, "-m", "shoal.cli.main"]


def copy_json(*args: str) -> dict[str, Any]:
    r = shoal("copy", "--json", *args)
    assert r.stdout, r.stderr
    doc: dict[str, Any] = json.loads(r.stdout)
    return doc


def shoal_files(d: Path) -> list[str]:
    return sorted(p.name for p in d.rglob("*") if ".shoal-" in p.name)


def written_by(doc: dict[str, Any]) -> dict[str, str]:
    """node -> the reason its OK carries (empty for the node that wrote)."""
    nodes = doc["nodes"]
    assert {d["state"] for d in nodes.values()} == {"PASS"}, nodes
    return {n: d["reason"] for n, d in nodes.items()}


@root_only
def test_per_process_nodes_write_their_shared_tmp_once(cluster: Any, tmp_path: Path) -> None:
    c = cluster(4, per_process=2)  # node1+node2 share a /tmp, node3+node4 another
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(8_000_000))
    doc = copy_json("-w", "node[1-4]", "-W", "1", "--chunk-size", "64K", str(src), "/tmp/")
    reasons = written_by(doc)
    for proc in c.state.procs:
        a, b = proc.names
        writer, follower = (a, b) if reasons[a] == "" else (b, a)
        assert reasons[writer] == ""
        assert reasons[follower] == f"same file already written by {writer} of this transfer"
        tmp = c.dir / a / "tmp"
        assert (tmp / "big.bin").read_bytes() == src.read_bytes()
        assert shoal_files(tmp) == []
    # Again, over the files now there (a new transfer replaces them, once).
    assert (
        len([r for r in written_by(copy_json("-w", "node[1-4]", str(src), "/tmp/")).values() if r])
        == 2
    )


@dataclass
class Shared:
    dest: Path  # the directory s1..s3 share, a real path of this machine
    own: Path  # where n4's copy lands

    @property
    def to(self) -> str:
        return f"{self.dest}/"


@pytest.fixture
def shared(agents: Agents, tmp_path: Path) -> Shared:
    """s1..s3 started as the non-root local cluster starts its agents: separate
    processes, no files root, this machine's filesystem; n4 on a root of its own."""
    dest = tmp_path / "shared" / "dest"
    dest.mkdir(parents=True)
    for name in ("s1", "s2", "s3"):
        agents.start(name)
    own = tmp_path / "own"
    (own / str(dest).lstrip("/")).mkdir(parents=True)
    agents.start("n4", files_root=own)
    agents.inventory()
    return Shared(dest, own / str(dest).lstrip("/"))


def test_agents_sharing_a_directory_write_once(shared: Shared, tmp_path: Path) -> None:
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(8_000_000))
    doc = copy_json("-w", "s[1-3],n4", "-W", "1", "--chunk-size", "64K", str(src), shared.to)
    reasons = written_by(doc)
    writers = [n for n in ("s1", "s2", "s3") if reasons[n] == ""]
    assert len(writers) == 1 and reasons["n4"] == ""
    for n in {"s1", "s2", "s3"} - set(writers):
        assert reasons[n] == f"same file already written by {writers[0]} of this transfer"
    assert (shared.dest / "big.bin").read_bytes() == src.read_bytes()
    assert (shared.own / "big.bin").read_bytes() == src.read_bytes()
    assert shoal_files(shared.dest) == []


def test_agents_sharing_a_directory_copy_a_tree_once(shared: Shared, tmp_path: Path) -> None:
    d = tmp_path / "dataset"
    (d / "sub").mkdir(parents=True)
    (d / "sub" / "data").write_bytes(os.urandom(3_000_000))
    (d / "latest").symlink_to("sub/data")
    doc = copy_json("-w", "s[1-3],n4", "-W", "1", "-r", f"{d}/", shared.to)
    reasons = written_by(doc)
    assert sorted(reasons.values()).count("") == 2, reasons  # one of s1-s3, and n4
    got = shared.dest / "dataset"
    assert (got / "sub" / "data").read_bytes() == (d / "sub" / "data").read_bytes()
    assert os.readlink(got / "latest") == "sub/data"
    assert shoal_files(shared.dest) == []


def _size(p: Path) -> int:
    try:
        return p.stat().st_size
    except FileNotFoundError:
        return -1


def _part(root: Path, name: str, min_bytes: int) -> Path:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for p in root.iterdir():
            if p.name.startswith(f".{name}.") and p.name.endswith(".shoal-part"):
                if _size(p) >= min_bytes:  # a claim's transient name may vanish
                    return p
        time.sleep(0.005)
    pytest.fail(f"no transfer of {name} reached {root}")


def test_writer_killed_the_follower_writes_instead(
    agents: Agents, shared: Shared, tmp_path: Path
) -> None:
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(150_000_000))
    # The chain n4 > s1 > s2 > s3: s1 writes the shared file, s2 and s3 follow it.
    args = ["-w", "s[1-3],n4", "-W", "1", "--chunk-size", "64K", "--stall-timeout", "120"]
    p = subprocess.Popen(
        [*SHOAL, "copy", "--json", *args, str(src), shared.to],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _part(shared.dest, "big.bin", 2_000_000)
    next(a for a in agents.started if a.name == "s1").kill(signal.SIGKILL)
    out, err = p.communicate(timeout=120)
    nodes = json.loads(out)["nodes"]
    assert nodes["s1"]["state"] == "UNREACHABLE", err
    states = {n: nodes[n]["state"] for n in ("s2", "s3", "n4")}
    assert states == {"s2": "PASS", "s3": "PASS", "n4": "PASS"}, (nodes, err)
    assert (shared.dest / "big.bin").read_bytes() == src.read_bytes()
    assert (shared.own / "big.bin").read_bytes() == src.read_bytes()
    assert shoal_files(shared.dest) == []  # the dead writer's part too


def test_writer_killed_followers_in_other_branches_follow_its_successor(
    agents: Agents, tmp_path: Path
) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    for i in range(1, 7):  # sharing this machine's filesystem, a tree of width 2
        agents.start(f"s{i}")
    agents.inventory()
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(150_000_000))
    args = ["-w", "s[1-6]", "--chunk-size", "64K", "--stall-timeout", "120"]
    p = subprocess.Popen(
        [*SHOAL, "copy", "--json", *args, str(src), f"{dest}/"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    part = _part(dest, "big.bin", 3_000_000)
    fd = open_existing(part)
    assert fd is not None
    lab = label(fd)
    os.close(fd)
    assert lab is not None and part.name.count(".") == 4  # the writer's, not a claim's
    writer = lab[1]
    next(a for a in agents.started if a.name == writer).kill(signal.SIGKILL)
    out, err = p.communicate(timeout=120)
    nodes = json.loads(out)["nodes"]
    assert nodes[writer]["state"] == "UNREACHABLE", err
    others = {n: d["state"] for n, d in nodes.items() if n != writer}
    assert set(others.values()) == {"PASS"}, (nodes, err)
    assert not any(writer in d["reason"] for n, d in nodes.items() if n != writer), nodes
    assert (dest / "big.bin").read_bytes() == src.read_bytes()
    assert shoal_files(dest) == []


def test_writer_hung_the_others_write_instead(
    agents: Agents, shared: Shared, tmp_path: Path
) -> None:
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(150_000_000))
    # A hung node is seen after the stall timeout; its followers give it up
    # after three times that (a loaded machine must not look hung: not 1 s).
    args = ["-w", "s[1-3],n4", "-W", "1", "--chunk-size", "64K", "--stall-timeout", "5"]
    p = subprocess.Popen(
        [*SHOAL, "copy", "--json", *args, str(src), shared.to],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    hung = _part(shared.dest, "big.bin", 2_000_000)  # s1's, the writer's
    s1 = next(a for a in agents.started if a.name == "s1")
    s1.proc.send_signal(signal.SIGSTOP)  # alive, holding its part, silent
    try:
        out, err = p.communicate(timeout=120)
    finally:
        s1.kill()
    nodes = json.loads(out)["nodes"]
    assert nodes["s1"]["state"] == "UNREACHABLE", err
    states = {n: nodes[n]["state"] for n in ("s2", "s3", "n4")}
    assert states == {"s2": "PASS", "s3": "PASS", "n4": "PASS"}, (nodes, err)
    assert (shared.dest / "big.bin").read_bytes() == src.read_bytes()
    assert shoal_files(shared.dest) == [hung.name]  # the hung agent's own, swept at its start


async def _dial(tree: pb.Subtree, timeout: float) -> grpc.aio.Channel:
    ch = grpc.aio.insecure_channel(tree.address)
    await asyncio.wait_for(ch.channel_ready(), timeout)
    return ch


@dataclass
class Pair:
    """Files services a and b in this process, sharing root; a 4 MB source."""

    root: Path
    servers: list[grpc.aio.Server]
    addr: dict[str, str]
    src: Path
    source: Any  # a tree.source Source
    header: fpb.CopyHeader

    async def stop(self) -> None:
        for server in self.servers:
            await server.stop(0)


async def _pair(tmp_path: Path) -> Pair:
    root = tmp_path / "shared"
    (root / "dest").mkdir(parents=True)
    servers, addr = [], {}
    for name in ("a", "b"):
        server = grpc.aio.server()
        frpc.add_FilesServicer_to_server(FilesService(_dial, root, Gate(name, None)), server)
        addr[name] = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
        await server.start()
        servers.append(server)
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(4_000_000))
    source = open_source(str(src), recursive=False, chunk_size=64 * 1024)
    m = source.meta
    header = fpb.CopyHeader(
        transfer_id=uuid.uuid4().hex,
        dest="/dest/",
        name=m.name,
        kind=m.kind,
        size=m.size,
        mode=m.mode,
        mtime_ns=m.mtime_ns,
        chunk_size=64 * 1024,
        connect_timeout=2.0,
    )
    return Pair(root, servers, addr, src, source, header)


def _results(out: asyncio.Queue[fpb.CopyEvent]) -> dict[str, pb.Result]:
    results = {}
    while not out.empty():
        ev = out.get_nowait()
        results[ev.event.node] = ev.event.result
    return results


async def test_a_node_never_follows_a_writer_below_it(tmp_path: Path) -> None:
    """After a writer died, a node's child may claim the shared file before the
    node itself is resumed: the node must keep its own bytes (it feeds that
    child), not wait on the child's file, which waits on it."""
    p = await _pair(tmp_path)
    root, addr, src, source, header = p.root, p.addr, p.src, p.source, p.header
    b_tree = pb.Subtree(name="b", address=addr["b"])
    # b is already writing this transfer, as when an adopter reached it first.
    ch = grpc.aio.insecure_channel(addr["b"])
    early = frpc.FilesStub(ch).Copy()
    hb = fpb.CopyHeader()
    hb.CopyFrom(header)
    hb.tree.CopyFrom(b_tree)
    try:
        await early.write(fpb.CopyMessage(header=hb))
        assert (await early.read()).resume_offset == 0
        first = src.read_bytes()[: 64 * 1024]
        await early.write(fpb.CopyMessage(chunk=fpb.CopyChunk(offset=0, data=first)))
        dest = root / "dest"
        for _ in range(2000):
            if any(p.stat().st_size == len(first) for p in dest.glob("*.shoal-part")):
                break
            await asyncio.sleep(0.005)
        # Now the tree a > b.
        origin = SourceOrigin(source)
        out: asyncio.Queue[fpb.CopyEvent] = asyncio.Queue()
        feed = Feed(header=header, origin=origin, dial=_dial, out=out)
        producer = asyncio.create_task(origin.produce())
        feed.start(pb.Subtree(name="a", address=addr["a"], children=[b_tree]))
        await asyncio.wait_for(feed.wait(), 60)  # a bound against the deadlock
        await producer
        origin.close()
        results = _results(out)
        assert {n: r.state for n, r in results.items()} == {"a": pb.STATE_OK, "b": pb.STATE_OK}
        assert results["a"].reason == "same file already written by b of this transfer"
        assert (dest / "big.bin").read_bytes() == src.read_bytes()
        assert shoal_files(root) == []
    finally:
        early.cancel()
        await ch.close()
        await p.stop()


async def test_a_follower_whose_writer_died_unreplaced_writes_its_own_copy(
    tmp_path: Path,
) -> None:
    """a follows w's file and feeds b from it; w dies with 64 KB written, after
    a's whole stream arrived, and nobody takes its place: a asks for its stream
    again and writes the file itself, and b follows a."""
    p = await _pair(tmp_path)
    root, addr, src, source, header = p.root, p.addr, p.src, p.source, p.header
    dest = root / "dest"
    # w: another agent on this filesystem, writing this transfer (its lock held).
    w = claim(part_path(dest / "big.bin", header.transfer_id), header.transfer_id, "w")
    assert w is not None
    os.write(w, src.read_bytes()[: 64 * 1024])
    origin = SourceOrigin(source)
    out: asyncio.Queue[fpb.CopyEvent] = asyncio.Queue()
    feed = Feed(header=header, origin=origin, dial=_dial, out=out)
    producer = asyncio.create_task(origin.produce())
    b_tree = pb.Subtree(name="b", address=addr["b"])
    try:
        feed.start(pb.Subtree(name="a", address=addr["a"], children=[b_tree]))
        for _ in range(6000):
            if feed.sent.get("a") == len(src.read_bytes()):
                break
            await asyncio.sleep(0.005)
        assert feed.sent.get("a") == 4_000_000
        os.close(w)  # w dies: the kernel drops its lock, its part stays
        await asyncio.wait_for(feed.wait(), 60)
        await producer
        results = _results(out)
        assert {n: (r.state, r.reason) for n, r in results.items()} == {
            "a": (pb.STATE_OK, ""),
            "b": (pb.STATE_OK, "same file already written by a of this transfer"),
        }
        assert (dest / "big.bin").read_bytes() == src.read_bytes()
        assert shoal_files(root) == []
    finally:
        origin.close()
        await p.stop()
