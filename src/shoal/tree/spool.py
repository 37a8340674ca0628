"""One node's copy of one broadcast: received bytes land in a temporary file
next to the destination, are hashed as they arrive, and become the
destination only after the end-to-end hash matches.

The spool is also the read-back source for this node's children: a child
feeder reads from the spool up to what has been written, so a slow child is
served from the page cache instead of holding chunks in memory, and an
adopted child resumes from any offset it reached. Memory per child is
therefore one chunk, whatever the file size or the speed mix.

A transfer is either a single file (the spool is renamed into place) or a
directory streamed as a tar archive (extracted into a temporary directory
next to the destination, then swapped in).

The spool file is claimed and locked by its writer (tree/claim.py), so a
dead transfer's spool can be swept and nodes sharing a filesystem write a
destination once (agent/follow.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import os
import shutil
import tarfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import xxhash

from shoal.core.wire import fpb
from shoal.errors import Claimed as Claimed  # re-exported
from shoal.errors import TransferError as TransferError  # re-exported
from shoal.tree.claim import DIR_SUFFIX, claim, part_path, set_label
from shoal.tree.claim import PART_SUFFIX as PART_SUFFIX  # re-exported
from shoal.tree.claim import sweep as sweep  # re-exported

WRITEBACK = 16 << 20  # bytes between starts of writeback
# The kernel gives a write page-cache folios as large as the write. On a VM
# that hands free memory back to its host, large free blocks are the ones
# handed back, which the host must fault in again on first touch: small
# writes cost several times less CPU there and no more elsewhere
# (benchmarks/bulk_floors.py, "write pieces").
PIECE = 64 << 10


def new_hasher() -> xxhash.xxh3_128:
    return xxhash.xxh3_128()


@dataclass(frozen=True)
class Meta:
    """What the sender says about the source."""

    name: str  # basename of the source
    kind: str  # "file" or "tar"
    size: int = -1  # total stream size when known
    mode: int = 0o644
    mtime_ns: int = 0
    uid: int = -1
    gid: int = -1
    preserve: bool = False  # apply mode/mtime (and owner when root)
    mirror: bool = False  # a directory replaces the destination instead of merging

    @classmethod
    def from_header(cls, h: fpb.CopyHeader, preserve: bool | None = None) -> Meta:
        """The sender's word, checked; preserve: the receiver's choice (gather).
        Meta's fields are the header's of the same names."""
        if h.kind not in ("file", "tar") or not h.name or "/" in h.name:
            raise TransferError(f"bad copy header (kind {h.kind!r}, name {h.name!r})")
        meta = cls(**{f.name: getattr(h, f.name) for f in dataclasses.fields(cls)})
        return meta if preserve is None else dataclasses.replace(meta, preserve=preserve)

    def to_header(self, **fields: Any) -> fpb.CopyHeader:
        """A header saying this; fields: the transfer's own (dest, chunk_size...)."""
        return fpb.CopyHeader(**dataclasses.asdict(self), **fields)


def resolve_target(dest: str, meta: Meta) -> Path:
    """Where the copy lands on this node (cp semantics).

    A file: DEST/NAME when DEST ends with '/' or is an existing directory,
    else DEST. A directory: DEST/NAME when DEST is an existing directory, else
    DEST. A file never replaces a directory.
    """
    if not dest:
        raise TransferError("empty destination path")
    path = Path(dest)
    if dest.endswith("/") and not path.is_dir():
        raise TransferError(f"destination directory {dest} does not exist")
    target = path / meta.name if path.is_dir() else path
    if meta.kind == "file" and target.is_dir():
        raise TransferError(f"{target} is a directory")
    if not target.parent.is_dir():
        raise TransferError(f"{target.parent} does not exist")
    return target


class Spool:
    """Receive one transfer on this node; see the module docstring."""

    note = ""  # said with this node's OK (see agent/follow.py)

    def __init__(
        self,
        target: Path,
        meta: Meta,
        transfer_id: str,
        writer: str = "",
        part: Path | None = None,
    ) -> None:
        """Claims the part file (tree/claim.py; part: another name than this
        transfer's own); raises Claimed when another writer holds it,
        TransferError when it cannot be made."""
        self.target = target
        self.meta = meta
        self.transfer_id = transfer_id
        self.writer = writer
        self.part = part or part_path(target, transfer_id)
        self.offset = 0  # bytes written to the spool
        self._flushed = 0  # bytes whose writeback has been started
        self.done = False  # the sender's stream is complete and verified
        self.failed: str | None = None
        self._hash = new_hasher()
        self._changed = asyncio.Condition()
        try:
            fd = claim(self.part, transfer_id, writer)
        except OSError as e:
            raise TransferError(f"cannot create {self.part}: {e.strerror or e}") from e
        if fd is None:
            raise Claimed(f"{self.part} is another writer's")
        self._fd = fd

    # -- receiving -----------------------------------------------------------

    async def write(self, data: bytes, needed: int | None = 0) -> None:
        """Append data; on a disk error the spool is removed and TransferError raised.
        needed: the least offset a child may still read back (None: no child
        is fed); the spool's pages below it that are on disk leave the cache."""
        try:
            view = memoryview(data)
            while view:
                n = os.write(self._fd, view[:PIECE])
                view = view[n:]
        except OSError as e:
            reason = "disk full" if e.errno == errno.ENOSPC else e.strerror
            await self.fail(f"writing {self.part}: {reason}")
            raise TransferError(f"{self.target}: {reason}") from e
        self._hash.update(data)
        self.offset += len(data)
        if self.offset - self._flushed >= WRITEBACK:
            # Start writing the bytes just written to disk now (they are dirty,
            # so they stay cached), not all at the final fsync; and let go of
            # those whose writeback began a window ago (clean by now: a page
            # still dirty is kept and let go at a later call), so a copy
            # writes through a few windows of pages it frees and reuses
            # instead of filling the node's page cache with new ones.
            drop = self._flushed - WRITEBACK
            if needed is not None:
                drop = min(drop, needed)
            with contextlib.suppress(OSError):
                os.posix_fadvise(
                    self._fd, self._flushed, self.offset - self._flushed, os.POSIX_FADV_DONTNEED
                )
                if drop > 0:
                    os.posix_fadvise(self._fd, 0, drop, os.POSIX_FADV_DONTNEED)
            self._flushed = self.offset
        async with self._changed:
            self._changed.notify_all()

    async def finish(self, expected_hash: str) -> None:
        """Verify the whole stream and put it in place; on any failure nothing is left."""
        try:
            got = self._hash.hexdigest()
            if got != expected_hash:
                raise TransferError(
                    f"checksum mismatch for {self.target} (got {got}, sent {expected_hash})"
                )
            if self.meta.size >= 0 and self.offset != self.meta.size:
                raise TransferError(
                    f"size mismatch for {self.target}: {self.offset} of {self.meta.size} bytes"
                )
            await flush(self._fd, self.part)
            await self._install()
        except TransferError as e:
            await self.fail(e.message)
            raise
        except OSError as e:
            await self.fail(f"installing {self.target}: {e.strerror}")
            raise TransferError(f"installing {self.target}: {e.strerror}") from e
        self.done = True
        async with self._changed:
            self._changed.notify_all()

    async def settle(self) -> None:
        """After finish() and once children may be sent the end: settle who
        wrote the destination (agent/follow.py's Shadow); nothing to do here."""

    async def _install(self) -> None:
        if self.meta.kind == "file":
            self._install_file()
        else:
            self._install_tree()

    def _apply_meta(self, path: Path, fd: int | None = None) -> None:
        m = self.meta
        if not m.preserve:
            return
        if os.geteuid() == 0 and m.uid >= 0:
            os.chown(fd if fd is not None else path, m.uid, m.gid)
        os.chmod(fd if fd is not None else path, m.mode & 0o7777)
        if m.mtime_ns:
            os.utime(fd if fd is not None else path, ns=(m.mtime_ns, m.mtime_ns))

    def _install_file(self) -> None:
        if self.meta.preserve:
            self._apply_meta(self.part, self._fd)
        else:  # the source's permission bits, never wider (as scp)
            os.fchmod(self._fd, self.meta.mode & 0o777 & ~_umask())
        os.replace(self.part, self.target)
        # The open fd still reads the same inode: children keep being fed.
        self.part = self.target

    def _install_tree(self) -> None:
        # Named after our part (its lock guards it from a sweep): ".NAME.TID.shoal-dir"
        tmpdir = self.part.with_name(self.part.name.removesuffix(PART_SUFFIX) + DIR_SUFFIX)
        try:
            with open(self.part, "rb") as f, tarfile.open(fileobj=f, mode="r|") as tar:
                tar.extractall(tmpdir, filter=_tar_filter(self.meta.preserve))
            root = tmpdir / self.meta.name
            if not root.is_dir() or root.is_symlink():
                raise TransferError(f"archive for {self.target} has no top directory")
            if self.target.is_dir() and not self.target.is_symlink():
                if self.meta.mirror:
                    old = self.target.with_name(f".{self.target.name}.{uuid.uuid4().hex[:8]}.old")
                    os.rename(self.target, old)
                    os.rename(root, self.target)
                    shutil.rmtree(old, ignore_errors=True)
                else:
                    merge(root, self.target, self.meta.preserve)
            elif self.target.exists() or self.target.is_symlink():
                raise TransferError(f"{self.target} exists and is not a directory")
            else:
                os.rename(root, self.target)
            # Installed: a node sharing this filesystem can tell (agent/follow.py).
            set_label(self.target, self.transfer_id, self.writer)
        except tarfile.TarError as e:
            raise TransferError(f"bad archive for {self.target}: {e}") from e
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)

    def discard(self, reason: str) -> None:
        """Give up: remove the temporary file (the destination is never touched)."""
        if self.failed is None:
            self.failed = reason
        if self.part != self.target:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.part)

    async def fail(self, reason: str) -> None:
        """discard(), and wake waiting readers so they see the failure."""
        self.discard(reason)
        async with self._changed:
            self._changed.notify_all()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)
        if self.meta.kind == "tar" and self.done and self.part != self.target:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.part)

    # -- feeding children ----------------------------------------------------

    async def read(self, offset: int, size: int, *, complete: asyncio.Event) -> bytes:
        """Up to size bytes from offset; waits for them to be written.

        Returns b"" at the end of a stream that `complete` marks as fully
        received. Raises TransferError if this spool failed.
        """
        while True:
            if self.failed is not None:
                raise TransferError(self.failed)
            if offset < self.offset:
                return os.pread(self._fd, min(size, self.offset - offset), offset)
            if complete.is_set():
                return b""
            async with self._changed:
                if offset >= self.offset and self.failed is None and not complete.is_set():
                    await self._changed.wait()

    async def written(self, offset: int) -> None:
        """Wait until bytes past offset are written, or anything else changed
        (a failure, notify())."""
        async with self._changed:
            if offset >= self.offset and self.failed is None:
                await self._changed.wait()

    async def notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()


async def flush(fd: int, path: Path) -> None:
    """fsync, without holding the event loop: `sync --data` in a subprocess
    (the disk may take seconds for a large file, and meanwhile this agent
    must keep feeding its children and serving everything else); os.fsync
    where there is no `sync`. Raises OSError."""
    try:
        proc = await asyncio.create_subprocess_exec(
            "sync", "--data", "--", str(path),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
    except FileNotFoundError:
        os.fsync(fd)
        return
    try:
        _, err = await proc.communicate()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise
    if proc.returncode != 0:
        raise OSError(errno.EIO, err.decode(errors="replace").strip() or "sync failed")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def merge(src: Path, dest: Path, preserve: bool) -> None:
    """Move the tree src into the existing directory dest, as `cp -r` does:
    each file or link of src replaces dest's (atomically), directories merge,
    what only dest has stays. A type clash (a file where dest has a
    directory, a directory where it has a file or a link) refuses the whole
    merge before anything is moved: dest's links are never followed."""
    clashes: list[str] = []
    moves: list[tuple[Path, Path]] = []

    def plan(s: Path, d: Path) -> None:
        for entry in sorted(os.scandir(s), key=lambda e: e.name):
            there = d / entry.name
            mine_dir = entry.is_dir(follow_symlinks=False)
            if not os.path.lexists(there):
                moves.append((Path(entry.path), there))
            elif mine_dir and there.is_dir() and not there.is_symlink():
                plan(Path(entry.path), there)
                if preserve:
                    moves.append((Path(entry.path), there))  # its mode and mtime, after
            elif not mine_dir and not (there.is_dir() and not there.is_symlink()):
                moves.append((Path(entry.path), there))
            else:
                clashes.append(str(there))

    plan(src, dest)
    if clashes:
        more = f" (and {len(clashes) - 1} more)" if len(clashes) > 1 else ""
        what = "a directory" if Path(clashes[0]).is_dir() else "a file or a link"
        raise TransferError(
            f"{clashes[0]} is {what} where the source has another kind{more};"
            " nothing was changed (--delete replaces the whole directory)"
        )
    for s, d in moves:
        if s.is_dir() and not s.is_symlink() and d.is_dir():
            shutil.copystat(s, d, follow_symlinks=False)  # -p: a merged directory's own
        else:
            os.replace(s, d)
    if preserve:
        shutil.copystat(src, dest, follow_symlinks=False)


def _tar_filter(preserve: bool) -> Callable[[tarfile.TarInfo, str], tarfile.TarInfo | None]:
    """tarfile's "data" filter (or "tar", which keeps modes and owners, with -p),
    except that symlinks stay links whatever they point at, as cp and scp
    keep them. What would land outside the destination is refused: a name
    that escapes (absolute, "..", through a link), a hard link out of the tree."""
    base = tarfile.tar_filter if preserve else tarfile.data_filter

    def keep(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
        if not member.issym():
            return base(member, dest)
        inside = base(member.replace(linkname=".", deep=False), dest)  # checks the name
        return None if inside is None else inside.replace(linkname=member.linkname, deep=False)

    return keep
