"""Part files that tell a live transfer from a dead one.

A node's spool for one transfer is `.NAME.TID.shoal-part` next to the
destination. Its writer holds an exclusive flock(2) on it from before the
name exists until the writer closes it; the kernel drops the lock when the
writer dies, SIGKILL included. So, on any filesystem several agents share
(the agents of one `--per-process` process, local agents sharing /tmp, nodes
on one NFS export):

- a part whose lock can be taken is dead and may be removed (`sweep`);
- a part whose lock is held is being written by a live agent, never touched;
- a second node of the same transfer finds the part claimed and follows the
  writer instead of writing the same bytes again (agent/follow.py).

The claim is made without a window in which the part exists unlocked: the
writer creates a uniquely named file, locks it, then link(2)s it to the part
name, which fails if another writer was first (link is atomic on NFS too).

The part (and the file it becomes) is labelled with the extended attribute
`user.shoal.copy` = "TRANSFER_ID NODE", so a node arriving after the writer
installed the file knows it is this transfer's, and can say who wrote it.
Where a filesystem has no user xattrs, files still dedupe by inode identity
while the writer works; only the label (and a late follower's shortcut) is
lost.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import shutil
import stat
import uuid
from pathlib import Path

log = logging.getLogger("shoal.agent.files")

PART_SUFFIX = ".shoal-part"
DIR_SUFFIX = ".shoal-dir"  # a directory transfer being extracted (tree/spool.py)
LABEL = "user.shoal.copy"
_NO_LINK = (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.EXDEV)


def part_path(target: Path, transfer_id: str) -> Path:
    return target.with_name(f".{target.name}.{transfer_id[:12]}{PART_SUFFIX}")


def claim(part: Path, transfer_id: str, writer: str) -> int | None:
    """Create part, locked and labelled, and return its fd (O_RDWR); None when
    it exists already (another writer's, live or dead). Raises OSError."""
    for _ in range(3):
        tmp = part.with_name(
            f"{part.name[: -len(PART_SUFFIX)]}.{uuid.uuid4().hex[:8]}{PART_SUFFIX}"
        )
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            _lock(fd)
            set_label(fd, transfer_id, writer)
            try:
                os.link(tmp, part)
            except FileNotFoundError:
                # swept between create and lock (the only unlocked moment): again
                _close_quietly(fd)
                continue
            except FileExistsError:
                _unlink_quietly(tmp)
                _close_quietly(fd)
                return None
            except OSError as e:
                if e.errno not in _NO_LINK:
                    raise
                _unlink_quietly(tmp)
                _close_quietly(fd)
                return _claim_without_link(part, transfer_id, writer)
            _unlink_quietly(tmp)
            return fd
        except BaseException:
            _unlink_quietly(tmp)
            _close_quietly(fd)
            raise
    raise OSError(errno.EAGAIN, f"{part} kept vanishing while being claimed")


def _claim_without_link(part: Path, transfer_id: str, writer: str) -> int | None:
    """A filesystem without hard links: O_EXCL, then the lock (a brief unlocked window)."""
    try:
        fd = os.open(part, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        return None
    _lock(fd)
    set_label(fd, transfer_id, writer)
    return fd


def _lock(fd: int) -> None:
    """The writer's lock (blocking: a sweeper holds it for microseconds at most).
    Without locks on this filesystem the part is never swept (nobody can take
    its lock either), and followers take its writer for alive."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except OSError as e:
        if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP):
            raise
        log.warning("no file locks on this filesystem (%s): spool files unguarded", e.strerror)


def open_existing(path: Path) -> int | None:
    """A read-only fd on an existing regular file, None if it is gone."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:  # gone, a symlink, not ours to read
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return fd


def held(fd: int) -> bool:
    """Does a live writer (another open of this file) hold its lock?"""
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:  # held; or no locks here, where a writer is taken for alive
        return True
    fcntl.flock(fd, fcntl.LOCK_UN)
    return False


def set_label(fd_or_path: int | Path, transfer_id: str, writer: str) -> None:
    """Label a broadcast's file; not a gathered one (no writer: nobody follows it)."""
    if not writer:
        return
    with contextlib.suppress(OSError):  # no user xattrs here: see the module docstring
        os.setxattr(fd_or_path, LABEL, f"{transfer_id} {writer}".encode())


def label(fd_or_path: int | Path) -> tuple[str, str] | None:
    """(transfer id, writer node) from the label, None if unlabelled."""
    try:
        if isinstance(fd_or_path, int):
            raw = os.getxattr(fd_or_path, LABEL)
        else:
            raw = os.getxattr(fd_or_path, LABEL, follow_symlinks=False)
    except OSError:
        return None
    tid, _, writer = raw.decode(errors="replace").partition(" ")
    return tid, writer


def remove_if_dead(part: Path) -> int | None:
    """Remove part if no live writer holds it; returns its size, None if kept."""
    fd = open_existing(part)
    if fd is None:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None  # live
        st = os.fstat(fd)
        try:
            now = os.stat(part, follow_symlinks=False)
        except FileNotFoundError:
            return None
        if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
            return None  # replaced meanwhile: not the file we locked
        os.unlink(part)
        return st.st_size
    except OSError:
        return None
    finally:
        os.close(fd)


def sweep(directory: Path) -> list[tuple[Path, int]]:
    """Remove what dead transfers left in directory (their parts and half-extracted
    directories); a live writer's files are never touched. Returns (path, bytes)."""
    removed: list[tuple[Path, int]] = []
    try:
        entries = sorted(directory.iterdir())
    except OSError:
        return removed
    for p in entries:
        if not p.name.startswith("."):
            continue
        if p.name.endswith(PART_SUFFIX):
            size = remove_if_dead(p)
            if size is not None:
                removed.append((p, size))
        elif p.name.endswith(DIR_SUFFIX) and p.is_dir() and not p.is_symlink():
            part = p.with_name(p.name[: -len(DIR_SUFFIX)] + PART_SUFFIX)
            fd = open_existing(part)
            if fd is not None:
                try:
                    if held(fd):
                        continue  # its writer is extracting it now
                finally:
                    os.close(fd)
            size = _tree_size(p)
            shutil.rmtree(p, ignore_errors=True)
            if not p.exists():
                removed.append((p, size))
    return removed


def _tree_size(root: Path) -> int:
    total = 0
    for d, _, files in os.walk(root):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(d, f)).st_size
    return total


def _close_quietly(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)


def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


class SpoolDirs:
    """The directories this agent spooled in, on disk, so that the next start
    of the agent sweeps what a crash (SIGKILL, power loss) left there."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._known: set[Path] = set()

    def add(self, directory: Path) -> None:
        """Record directory (before a part is made in it); raises OSError."""
        if directory in self._known:
            return
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, os.fsencode(directory) + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        self._known.add(directory)

    def sweep(self) -> list[tuple[Path, int]]:
        """Sweep every recorded directory, then forget them (this agent has no
        transfer yet: whatever is live there belongs to another agent)."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return []
        dirs = dict.fromkeys(Path(os.fsdecode(line)) for line in raw.splitlines() if line)
        removed = [r for d in dirs for r in sweep(d)]
        # Keep the directories where parts remain (another agent's, or one we
        # could not remove): the next start looks again.
        keep = [d for d in dirs if _has_parts(d)]
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, b"".join(os.fsencode(d) + b"\n" for d in keep))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        self._known = set(keep)
        return removed


def _has_parts(directory: Path) -> bool:
    try:
        return any(p.name.endswith(PART_SUFFIX) for p in directory.iterdir())
    except OSError:
        return False
