"""Nodes that share a filesystem: one writes the destination, the others follow.

When a node's part file for a transfer is already claimed by a live writer
(another agent of the same `--per-process` process, local agents sharing
/tmp, nodes on one NFS export; see tree/claim.py), writing the same bytes
to the same place again would cost disk and I/O for nothing and, done
naively, collide. The node follows instead:

- it still takes its own stream and checks the end-to-end hash, so its own
  link is verified and an adopter can resume it from its offset;
- it writes nothing: its children are fed from the writer's file (the same
  bytes at the same offsets), read back as the writer writes them;
- it reports OK once its stream verified *and* the writer put the file in
  place ("same file already written by node3 of this transfer"). If the
  writer dies, fails or hangs first, the node follows whichever node claims
  the file next (a follower of the dead writer resumed after the fault writes
  it anew). If none does soon, or the one that does is below it, the node
  raises Rewind: the agent asks its parent to send the stream again from the
  start and writes its own copy (files.py), so no node waits on a file that
  nobody writes.

A node never follows a writer below it in the tree (that writer's bytes come
through this node: after a writer died, one of our children may have taken
its place first), nor, once resumed after a fault, a writer that may be the
relay that died or hung. It keeps a Shadow instead: its own spool under a
private name, put in place only if the writer dies, fails or makes no
progress for a while, else removed.

`open_spool` decides between writing and following.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from collections.abc import Collection
from pathlib import Path

from shoal.tree.claim import PART_SUFFIX, held, label, open_existing, part_path, remove_if_dead
from shoal.tree.spool import Claimed, Meta, Spool, TransferError, new_hasher

log = logging.getLogger("shoal.agent.files")

POLL = 0.02  # seconds between looks at the writer's progress
PATIENCE = 30.0  # seconds without progress before a (hung) writer is given up
SUCCESSOR = 5.0  # seconds a follower waits for a node to take a dead writer's place
CHECK = 1 << 20  # bytes of our own stream between looks at the writer


class Rewind(Exception):
    """This follower lost the file it followed (its writer died or hung and no
    node it may follow took its place): its node writes its own copy, from its
    parent's stream sent again from the start."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def open_spool(
    target: Path,
    meta: Meta,
    transfer_id: str,
    node: str,
    below: Collection[str] = (),
    patience: float = PATIENCE,
    resumed: bool = False,
) -> Spool | Follower:
    """This node's spool for the transfer: its own, or a Follower of the node
    that writes the same destination on a shared filesystem. below: the
    nodes of this node's subtree (never followed, see the module docstring).
    patience: seconds a writer may make no progress before it is given up.
    resumed: a follower resumed after a fault (its writer may be the relay that
    died or hung) keeps its own copy from now on."""
    part = part_path(target, transfer_id)

    def follow_installed() -> Spool | Follower | None:
        """A Follower of the target when another node installed it already."""
        if meta.kind != "file" or (fd := open_existing(target)) is None:
            return None
        if _ours(label(fd), transfer_id):
            return _said(node, Follower(target, meta, transfer_id, fd, patience, below))
        os.close(fd)
        return None

    for _ in range(4):
        if (seen := follow_installed()) is not None:
            return seen
        try:
            mine = Spool(target, meta, transfer_id, writer=node)
        except Claimed:
            pass
        else:
            # the writer may have put its part in place between the look at
            # the target and the claim: then follow it, as if seen before
            if (seen := follow_installed()) is None:
                return mine
            mine.discard("installed by another node meanwhile")
            mine.close()
            return seen
        fd = open_existing(part)
        if fd is None:
            continue  # installed or given up meanwhile: look again
        if installed(target, meta, transfer_id, fd):
            return _said(node, Follower(target, meta, transfer_id, fd, patience, below))
        if held(fd):
            lab = label(fd)
            # Unlabelled (no user xattrs here), a directory's install cannot be
            # seen from outside: keep our own copy too (it goes in if needed).
            blind = lab is None and meta.kind != "file"
            if resumed or blind or (lab is not None and lab[1] in below):
                return _said(node, Shadow(target, meta, transfer_id, node, fd, patience))
            return _said(node, Follower(target, meta, transfer_id, fd, patience, below))
        os.close(fd)
        remove_if_dead(part)  # its writer died (this transfer, another agent): take its place
    raise TransferError(f"cannot claim {part}: other writers keep taking it")


def _said(node: str, spool: Spool | Follower) -> Spool | Follower:
    tid = spool.transfer_id[:8]
    if isinstance(spool, Shadow):
        how = "keeps its own copy until that one is in place"
        writer = spool.watched
    else:
        how, writer = "follows (writes nothing)", getattr(spool, "writer", "")
    log.info(
        "copy %s: %s writes %s, which %s shares: %s %s", tid, writer, spool.target, node, node, how
    )
    return spool


def _ours(lab: tuple[str, str] | None, transfer_id: str) -> bool:
    return lab is not None and lab[0] == transfer_id


def installed(target: Path, meta: Meta, transfer_id: str, fd: int) -> bool:
    """Is the writer's copy (open at fd) in place at target?"""
    if _ours(label(target), transfer_id):
        return True
    if meta.kind != "file":
        return False
    try:  # no xattrs here: the installed file is the writer's part, renamed
        a, b = os.fstat(fd), os.stat(target, follow_symlinks=False)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


class Follower:
    """The Spool interface for a node whose destination another node writes."""

    def __init__(
        self,
        target: Path,
        meta: Meta,
        transfer_id: str,
        fd: int,
        patience: float = PATIENCE,
        below: Collection[str] = (),
    ) -> None:
        self.target = target
        self.meta = meta
        self.transfer_id = transfer_id
        self.part = part_path(target, transfer_id)  # the writer's
        lab = label(fd)
        self.writer = lab[1] if lab and lab[1] else "another node"
        self.offset = 0  # bytes of our own stream received (and hashed)
        self.done = False
        self.failed: str | None = None
        self.note = ""
        self._fd = fd  # read-only, on the writer's file
        self._hash = new_hasher()
        self._patience = patience
        self._progress = (-1, 0.0)  # the writer's size, and when we saw it change
        self._gone_at: float | None = None  # when we saw the writer gone
        self._below = below
        self._checked = 0  # our offset when we last looked at the writer
        self.lost: str | None = None  # why we stopped following (see Rewind)

    async def write(self, data: bytes, needed: int | None = 0) -> None:
        """As Spool.write; needed is of no use here: nothing is written."""
        if self.failed is not None:
            raise TransferError(self.failed)
        if self.offset - self._checked >= CHECK:
            self._checked = self.offset
            if self.look() is not None:
                raise Rewind(self.lost or "")
        self._hash.update(data)
        self.offset += len(data)

    async def finish(self, expected_hash: str) -> None:
        """Our stream verified, wait until the writer's copy is in place."""
        got = self._hash.hexdigest()
        if got != expected_hash:
            await self._fail(
                f"checksum mismatch for {self.target} (got {got}, sent {expected_hash})"
            )
        if self.meta.size >= 0 and self.offset != self.meta.size:
            await self._fail(
                f"size mismatch for {self.target}: {self.offset} of {self.meta.size} bytes"
            )
        while not installed(self.target, self.meta, self.transfer_id, self._fd):
            if self.look() is not None:
                raise Rewind(self.lost or "")
            await asyncio.sleep(POLL)
        lab = label(self.target)  # who put it in place (our writer's successor?)
        who = lab[1] if lab is not None and lab[0] == self.transfer_id else self.writer
        self.note = f"same file already written by {who} of this transfer"
        self.done = True

    def stalled(self) -> bool:
        """The writer's file has not changed for `patience` seconds (a hung agent)."""
        size, since = os.fstat(self._fd).st_size, time.monotonic()
        if size != self._progress[0]:
            self._progress = (size, since)
            return False
        return since - self._progress[1] > self._patience

    def look(self) -> str | None:
        """Why we can follow the writer no longer (sticky), None while we can.
        A writer that died or failed is replaced by the node that claimed the
        file after it (one of its followers, resumed after the fault)."""
        if self.lost is not None or installed(self.target, self.meta, self.transfer_id, self._fd):
            return self.lost
        if held(self._fd):
            self._gone_at = None
            if self.stalled():
                self.lost = f"{self.writer} made no progress for {self._patience:g}s"
            return self.lost
        now = time.monotonic()
        self._gone_at = self._gone_at or now
        successor = self._refollow()
        if successor is None and now - self._gone_at > SUCCESSOR:
            self.lost = f"{self.writer} stopped, and no other node took its place"
        elif successor is False:
            self.lost = f"{self.writer} stopped, and a node below this one took its place"
        return self.lost

    def _refollow(self) -> bool | None:
        """Follow the node that claimed the file after our writer: True; None
        if none has yet; False if one has whose bytes come through us."""
        fd = open_existing(self.part)
        if fd is None:
            return None
        lab, new, old = label(fd), os.fstat(fd), os.fstat(self._fd)
        if (
            (new.st_dev, new.st_ino) == (old.st_dev, old.st_ino)
            or lab is None
            or lab[0] != self.transfer_id
            or not held(fd)
        ):
            os.close(fd)
            return None
        if lab[1] in self._below:  # never wait on a writer we feed
            os.close(fd)
            return False
        log.info(
            "copy %s: %s took over %s from %s",
            self.transfer_id[:8],
            lab[1],
            self.target,
            self.writer,
        )
        os.close(self._fd)
        self._fd, self.writer = fd, lab[1]
        self._progress, self._gone_at = (-1, 0.0), None
        return True

    def writer_gone(self) -> bool:
        """The writer died or gave up without putting the file in place."""
        return not held(self._fd) and not installed(
            self.target, self.meta, self.transfer_id, self._fd
        )

    async def _fail(self, reason: str) -> None:
        await self.fail(reason)
        raise TransferError(reason)

    def discard(self, reason: str) -> None:
        if self.failed is None:
            self.failed = reason  # nothing of ours is on disk

    async def fail(self, reason: str) -> None:
        self.discard(reason)

    def close(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = -1

    async def read(self, offset: int, size: int, *, complete: asyncio.Event) -> bytes:
        """Our children's bytes, from the writer's file as it grows (see Spool.read).
        Raises Rewind once this follower was replaced by its node's own spool."""
        while True:
            if self.failed is not None:
                raise TransferError(self.failed)
            if self._fd < 0:
                raise Rewind(self.lost or "replaced")
            have = os.fstat(self._fd).st_size
            if offset < have:
                return os.pread(self._fd, min(size, have - offset), offset)
            if complete.is_set():
                return b""
            self.look()  # follows a successor; once lost, our node replaces us soon
            await asyncio.sleep(POLL)

    async def notify(self) -> None:
        return None

    async def settle(self) -> None:
        return None  # finish() waited for the writer


class Shadow(Spool):
    """Our own spool, under a private name, when the node writing the shared
    file is below us: installed only if that writer fails."""

    def __init__(
        self, target: Path, meta: Meta, transfer_id: str, node: str, fd: int, patience: float
    ) -> None:
        self._writer = Follower(target, meta, transfer_id, fd, patience)  # to watch it
        private = target.with_name(
            f".{target.name}.{transfer_id[:12]}.{uuid.uuid4().hex[:8]}{PART_SUFFIX}"
        )
        try:
            super().__init__(target, meta, transfer_id, writer=node, part=private)
        except BaseException:
            self._writer.close()
            raise

    @property
    def watched(self) -> str:
        return self._writer.writer

    async def _install(self) -> None:
        return None  # in settle(): our children (the writer among them) get the end first

    async def settle(self) -> None:
        w = self._writer
        try:
            while not installed(self.target, self.meta, self.transfer_id, w._fd):
                if w.writer_gone() or w.stalled():
                    await super()._install()  # it failed: ours goes in place
                    return
                await asyncio.sleep(POLL)
            os.unlink(self.part)  # the writer's copy is in place; our fd still feeds children
        except OSError as e:
            await self.fail(f"installing {self.target}: {e.strerror}")
            raise TransferError(f"installing {self.target}: {e.strerror}") from e
        self.part = self.target
        lab = label(self.target)  # another shadow may have put its copy in place
        self.note = f"same file already written by {lab[1] if lab else w.writer} of this transfer"

    def close(self) -> None:
        super().close()
        self._writer.close()
