"""The receiving side of a broadcast: verified, atomic, bounded, read-back."""

from __future__ import annotations

import asyncio
import ctypes
import io
import mmap
import os
import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import xxhash

from shoal.tree.source import open_source
from shoal.tree.spool import (
    PART_SUFFIX,
    WRITEBACK,
    Meta,
    Spool,
    TransferError,
    resolve_target,
    sweep,
)


def leftovers(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if "shoal" in p.name)


async def receive(
    src: str,
    dest: str,
    *,
    recursive: bool = False,
    preserve: bool = False,
    mirror: bool = False,
    corrupt: bool = False,
) -> Path:
    source = open_source(
        src, recursive=recursive, preserve=preserve, mirror=mirror, chunk_size=4096
    )
    target = resolve_target(dest, source.meta)
    spool = Spool(target, source.meta, uuid.uuid4().hex)
    try:
        for chunk in source.chunks():
            await spool.write(chunk)
        digest = source.digest if not corrupt else "0" * 32
        await spool.finish(digest)
    finally:
        spool.close()
    return target


async def test_file_lands_verified_and_atomic(tmp_path: Path) -> None:
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(100_000))
    dest = tmp_path / "out"
    dest.mkdir()
    target = await receive(str(src), f"{dest}/")
    assert target == dest / "big.bin"
    assert target.read_bytes() == src.read_bytes()
    assert leftovers(dest) == []


async def test_checksum_mismatch_keeps_old_destination_and_leaves_no_temp(tmp_path: Path) -> None:
    src = tmp_path / "new"
    src.write_bytes(b"new contents" * 1000)
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "new").write_bytes(b"old")
    with pytest.raises(TransferError, match="checksum mismatch"):
        await receive(str(src), str(dest), corrupt=True)
    assert (dest / "new").read_bytes() == b"old"
    assert leftovers(dest) == []


async def test_preserve_mode_and_mtime(tmp_path: Path) -> None:
    src = tmp_path / "tool.sh"
    src.write_text("#!/bin/sh\n")
    os.chmod(src, 0o751)
    os.utime(src, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    target = await receive(str(src), str(tmp_path / "copy.sh"), preserve=True)
    st = target.stat()
    assert (st.st_mode & 0o777, st.st_mtime_ns) == (0o751, 1_600_000_000_000_000_000)


def make_tree(root: Path) -> None:
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "a.txt").write_text("alpha")
    (root / "sub" / "b.bin").write_bytes(os.urandom(20_000))
    (root / "sub" / "deeper" / "c").write_text("c")
    (root / "link").symlink_to("sub/b.bin")
    (root / "dirlink").symlink_to("sub")
    os.chmod(root / "a.txt", 0o600)


async def test_directory_with_symlinks_and_modes(tmp_path: Path) -> None:
    src = tmp_path / "dataset"
    make_tree(src)
    dest = tmp_path / "scratch"
    dest.mkdir()
    target = await receive(f"{src}/", f"{dest}/", recursive=True, preserve=True)
    assert target == dest / "dataset"
    assert (target / "sub" / "b.bin").read_bytes() == (src / "sub" / "b.bin").read_bytes()
    assert (target / "sub" / "deeper" / "c").read_text() == "c"
    assert os.readlink(target / "link") == "sub/b.bin"
    assert os.readlink(target / "dirlink") == "sub"
    assert (target / "a.txt").stat().st_mode & 0o777 == 0o600
    assert leftovers(dest) == []


@pytest.mark.parametrize("mirror", [False, True], ids=["merge", "mirror"])
async def test_directory_lands_in_an_existing_one_only_when_verified(
    tmp_path: Path, mirror: bool
) -> None:
    src = tmp_path / "dataset"
    make_tree(src)
    dest = tmp_path / "scratch"
    (dest / "dataset").mkdir(parents=True)
    (dest / "dataset" / "stale").write_text("old")
    with pytest.raises(TransferError):
        await receive(str(src), str(dest), recursive=True, mirror=mirror, corrupt=True)
    assert (dest / "dataset" / "stale").read_text() == "old"
    await receive(str(src), str(dest), recursive=True, mirror=mirror)
    assert (dest / "dataset" / "stale").exists() is not mirror
    assert (dest / "dataset" / "a.txt").read_text() == "alpha"
    assert leftovers(dest) == []


def test_resolve_target_rules(tmp_path: Path) -> None:
    f = Meta(name="x", kind="file")
    assert resolve_target(f"{tmp_path}/", f) == tmp_path / "x"
    assert resolve_target(str(tmp_path), f) == tmp_path / "x"
    assert resolve_target(str(tmp_path / "y"), f) == tmp_path / "y"
    with pytest.raises(TransferError, match="does not exist"):
        resolve_target(f"{tmp_path}/nope/", f)
    with pytest.raises(TransferError, match="does not exist"):
        resolve_target(f"{tmp_path}/nope/deeper", f)
    (tmp_path / "x").mkdir()
    with pytest.raises(TransferError, match="is a directory"):
        resolve_target(str(tmp_path), f)


async def test_children_read_back_while_writing(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "f", Meta(name="f", kind="file", size=3 * 4096), "t1")
    complete = asyncio.Event()
    blocks = [bytes([i]) * 4096 for i in range(3)]

    async def child(start: int) -> bytes:
        got, off = bytearray(), start
        while chunk := await spool.read(off, 4096, complete=complete):
            got += chunk
            off += len(chunk)
        return bytes(got)

    readers = [asyncio.create_task(child(0)), asyncio.create_task(child(4096))]
    for b in blocks:
        await spool.write(b)
        await asyncio.sleep(0)
    complete.set()
    await spool.notify()
    whole, resumed = await asyncio.gather(*readers)
    assert whole == b"".join(blocks)
    assert resumed == b"".join(blocks[1:])
    spool.close()


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tiny tmpfs to fill needs root")
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


async def test_disk_full_fails_with_reason_and_leaves_nothing(
    tmp_path: Path, tiny_fs: Path
) -> None:
    src = tmp_path / "big"
    src.write_bytes(os.urandom(1 << 20))
    with pytest.raises(TransferError, match="disk full"):
        await receive(str(src), f"{tiny_fs}/")
    assert list(tiny_fs.iterdir()) == []


def test_sweep_removes_stale_spools(tmp_path: Path) -> None:
    tmp_path = tmp_path / "dir"
    tmp_path.mkdir()
    (tmp_path / f".x.abc{PART_SUFFIX}").write_text("junk")
    (tmp_path / "keep").write_text("data")
    assert [(p.name, n) for p, n in sweep(tmp_path)] == [(f".x.abc{PART_SUFFIX}", 4)]
    assert [p.name for p in tmp_path.iterdir()] == ["keep"]


def _archive(members: list[tarfile.TarInfo]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for m in members:
            tar.addfile(m, io.BytesIO(b"x" * m.size) if m.isreg() else None)
    return buf.getvalue()


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    m = tarfile.TarInfo(name)
    m.type, m.linkname, m.mode = kind, link, 0o755 if kind == tarfile.DIRTYPE else 0o644
    m.size = 1 if kind == tarfile.REGTYPE else 0
    return m


@pytest.mark.parametrize(
    ("evil", "why"),
    [
        ([_member("top/../../escaped")], "outside"),
        ([_member("top/out", tarfile.SYMTYPE, "/tmp"), _member("top/out/escaped")], "outside"),
        ([_member("top/hard", tarfile.LNKTYPE, "../escaped")], "outside"),
    ],
    ids=["dotdot", "through-a-link", "hard-link-out"],
)
async def test_an_archive_escaping_the_destination_is_refused(
    tmp_path: Path, evil: list[tarfile.TarInfo], why: str
) -> None:
    """A sender (a compromised relay) cannot write outside the destination,
    even though links themselves may point anywhere."""
    data = _archive([_member("top", tarfile.DIRTYPE), *evil])
    dest = tmp_path / "dest"
    dest.mkdir()
    meta = Meta(name="top", kind="tar")
    spool = Spool(dest / "top", meta, uuid.uuid4().hex)
    try:
        await spool.write(data)
        h = xxhash.xxh3_128()
        h.update(data)
        with pytest.raises(TransferError, match=why):
            await spool.finish(h.hexdigest())
    finally:
        spool.close()
    assert not (tmp_path / "escaped").exists() and not Path("/tmp/escaped").exists()
    assert sorted(p.name for p in dest.iterdir()) == []


def cached(path: Path, length: int) -> bytes:
    """One byte per page of the file's first length bytes, 1 where the page
    is in the page cache (mincore)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]  # fmt: skip
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    fd = os.open(path, os.O_RDONLY)
    try:
        addr = libc.mmap(None, length, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        assert addr not in (None, ctypes.c_void_p(-1).value), os.strerror(ctypes.get_errno())
        vec = ctypes.create_string_buffer((length + mmap.PAGESIZE - 1) // mmap.PAGESIZE)
        try:
            assert libc.mincore(addr, length, vec) == 0, os.strerror(ctypes.get_errno())
        finally:
            libc.munmap(addr, length)
    finally:
        os.close(fd)
    return bytes(b & 1 for b in vec.raw)


async def test_a_spool_lets_go_of_written_pages_no_child_still_reads(tmp_path: Path) -> None:
    """Once on disk, pages below what every child has sent leave the cache: a
    leaf keeps only its last windows, a relay what its child has not sent."""
    piece = os.urandom(1 << 20)
    size = 6 * WRITEBACK
    synced = 4 * WRITEBACK
    kept: dict[str, tuple[int, int]] = {}
    for label, needed in (("leaf", None), ("relay", 2 * WRITEBACK), ("keep", 0)):
        spool = Spool(tmp_path / label, Meta(name=label, kind="file", size=size), label)
        try:
            for i in range(size // len(piece)):
                if i * len(piece) == synced:
                    # what was written so far is on disk, its pages clean, and
                    # all cached (read back: the writeback may have let some go)
                    os.sync()
                    with spool.part.open("rb") as f:
                        while f.read(1 << 20):
                            pass
                await spool.write(piece, needed)
            pages = cached(spool.part, synced)
            half = len(pages) // 2
            kept[label] = (sum(pages[:half]) * mmap.PAGESIZE, sum(pages[half:]) * mmap.PAGESIZE)
        finally:
            spool.close()
    if kept["keep"] != (synced // 2, synced // 2):
        pytest.skip("this filesystem or kernel does not keep written pages cached")
    assert kept["leaf"] == (0, 0)  # on disk, and no child reads them
    assert kept["relay"] == (0, synced // 2)  # its child has sent the first half only
