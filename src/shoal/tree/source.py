"""Reading a path as a stream of chunks with an end-to-end hash: the client's
source for `shoal copy` (checked before any connection) and the agent's
answer to a gather.

A file is sent as its bytes. A directory (-r) is sent as a tar stream whose
headers come from the tarfile module and whose file data is read in chunks,
so memory stays at one chunk whatever the tree holds. Symlinks travel as
links; modes, mtimes (and owners, when the receiver is root) with -p.
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from shoal.errors import UsageError
from shoal.tree.spool import Meta, new_hasher

DEFAULT_CHUNK = 512 * 1024
_BLOCK = tarfile.BLOCKSIZE


@dataclass
class Source:
    path: Path
    meta: Meta
    chunk_size: int = DEFAULT_CHUNK
    sent: int = 0
    _hasher: object = field(default_factory=new_hasher, repr=False)

    @property
    def digest(self) -> str:
        """The hash of everything read so far (complete once chunks() is exhausted)."""
        return self._hasher.hexdigest()  # type: ignore[attr-defined]

    def chunks(self) -> Iterator[bytes]:
        it = (
            _file_chunks(self.path, self.chunk_size)
            if self.meta.kind == "file"
            else _tar_chunks(self.path, self.chunk_size)
        )
        for chunk in it:
            self._hasher.update(chunk)  # type: ignore[attr-defined]
            self.sent += len(chunk)
            yield chunk


def open_source(
    src: str,
    *,
    recursive: bool = False,
    preserve: bool = False,
    chunk_size: int = DEFAULT_CHUNK,
) -> Source:
    """Check that src can be sent; raise UsageError before anything is contacted."""
    if chunk_size < 4096 or chunk_size > 64 * 1024 * 1024:
        raise UsageError("chunk size must be between 4 KiB and 64 MiB")
    path = Path(src)
    try:
        st = path.stat()
    except FileNotFoundError as e:
        raise UsageError(f"{src}: no such file or directory") from e
    except OSError as e:
        raise UsageError(f"{src}: {e.strerror}") from e
    name = path.resolve().name if src.rstrip("/") in ("", ".", "..") else path.name
    if stat.S_ISDIR(st.st_mode):
        if not recursive:
            raise UsageError(f"{src} is a directory (use -r to copy a directory)")
        if not os.access(path, os.R_OK | os.X_OK):
            raise UsageError(f"{src}: permission denied")
        kind, size = "tar", -1
    elif stat.S_ISREG(st.st_mode):
        if not os.access(path, os.R_OK):
            raise UsageError(f"{src}: permission denied")
        kind, size = "file", st.st_size
    else:
        raise UsageError(f"{src} is not a regular file or a directory")
    meta = Meta(
        name=name,
        kind=kind,
        size=size,
        mode=stat.S_IMODE(st.st_mode),
        mtime_ns=st.st_mtime_ns,
        uid=st.st_uid,
        gid=st.st_gid,
        preserve=preserve,
    )
    return Source(path=path, meta=meta, chunk_size=chunk_size)


def _file_chunks(path: Path, size: int) -> Iterator[bytes]:
    with path.open("rb", buffering=0) as f:
        while chunk := f.read(size):
            yield chunk


def _tar_chunks(root: Path, size: int) -> Iterator[bytes]:
    """A PAX tar stream of root (top directory named root's name), in chunks."""
    helper = tarfile.open(fileobj=io.BytesIO(), mode="w", format=tarfile.PAX_FORMAT)
    out = bytearray()
    arc_root = root.resolve().name
    for path, arcname in _walk(root, arc_root):
        info = helper.gettarinfo(str(path), arcname)
        if info is None:  # sockets, fifos, devices: not data, skipped
            continue
        out += info.tobuf(tarfile.PAX_FORMAT, tarfile.ENCODING, "surrogateescape")
        if info.isreg():
            with path.open("rb", buffering=0) as f:
                left = info.size
                while left > 0:
                    data = f.read(min(size, left))
                    if not data:  # the file shrank under us: pad, the hash still covers it
                        data = b"\0" * min(size, left)
                    out += data
                    left -= len(data)
                    while len(out) >= size:
                        yield bytes(out[:size])
                        del out[:size]
            pad = -info.size % _BLOCK
            out += b"\0" * pad
        while len(out) >= size:
            yield bytes(out[:size])
            del out[:size]
    out += b"\0" * (2 * _BLOCK)
    while out:
        yield bytes(out[:size])
        del out[:size]


def _walk(root: Path, arc_root: str) -> Iterator[tuple[Path, str]]:
    yield root, arc_root
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel = os.path.relpath(dirpath, root)
        base = arc_root if rel == "." else f"{arc_root}/{rel}"
        for name in sorted(filenames) + [
            d for d in dirnames if os.path.islink(os.path.join(dirpath, d))
        ]:
            yield Path(dirpath, name), f"{base}/{name}"
        for d in dirnames:
            if not os.path.islink(os.path.join(dirpath, d)):
                yield Path(dirpath, d), f"{base}/{d}"
