"""The gateway's own file store: on disk for one gateway, in Redis for several."""

from __future__ import annotations

import contextlib
import re
import secrets
from pathlib import Path

from shoal.errors import ConfigError
from shoal.gateway.shared import Shared, Unavailable

# Jobe's file ids are file names in its cache: letters and digits (Moodle
# sends a hash), at most what a file name can hold (Jobe fails to write longer).
FILE_ID = re.compile(r"[A-Za-z0-9]{1,255}")  # fullmatch


def valid_id(fid: str) -> bool:
    return FILE_ID.fullmatch(fid) is not None


class DiskFiles:
    def __init__(self, root: Path) -> None:
        self.root = root
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(f"files_dir {root}: cannot be made: {e.strerror or e}") from None

    async def put(self, fid: str, data: bytes) -> None:
        tmp = self.root / f".{secrets.token_hex(8)}.tmp"
        tmp.write_bytes(data)
        tmp.replace(self.root / fid)  # atomic: a reader never sees half a file

    async def get(self, fid: str) -> bytes | None:
        try:
            return (self.root / fid).read_bytes()
        except FileNotFoundError:
            return None

    async def exists(self, fid: str) -> bool:
        return (self.root / fid).is_file()


class RedisFiles:
    """Files in Redis, shared by every gateway, with a local copy in files_dir
    of each file this gateway took or pushed, which answers when Redis does
    not have the file (it restarted empty) or is away. A file put while it is
    away is handed to Redis when it returns. A file only another gateway took
    is unknown here meanwhile: a run naming it is 404, and CodeRunner then puts
    its files and runs again.
    (Moodle's file ids are content hashes, so a copy does not go stale.)"""

    def __init__(self, shared: Shared, prefix: str, local: DiskFiles) -> None:
        self.shared = shared
        self.prefix = prefix + "file:"
        self.local = local
        self._pending: set[str] = set()  # put while Redis was away
        shared.on_recover.append(self.hand_back)

    async def put(self, fid: str, data: bytes) -> None:
        try:
            await self.shared.run(lambda r: r.set(self.prefix + fid, data))
        except Unavailable:
            await self.local.put(fid, data)  # the only copy meanwhile: OSError is the put's
            self._pending.add(fid)
            return
        self._pending.discard(fid)
        with contextlib.suppress(OSError):  # a cache: a full disk is no failure of the put
            await self.local.put(fid, data)

    async def get(self, fid: str) -> bytes | None:
        try:
            v = await self.shared.run(lambda r: r.get(self.prefix + fid))
        except Unavailable:
            return await self.local.get(fid)
        if v is None:  # another gateway's file lost with a Redis restart, say
            return await self.local.get(fid)
        data = bytes(v)
        with contextlib.suppress(OSError):
            if not await self.local.exists(fid):
                await self.local.put(fid, data)
        return data

    async def exists(self, fid: str) -> bool:
        try:
            found = bool(await self.shared.run(lambda r: r.exists(self.prefix + fid)))
        except Unavailable:
            return await self.local.exists(fid)
        return found or await self.local.exists(fid)

    async def hand_back(self) -> str:
        """Redis is back: give it the files put here meanwhile."""
        n = 0
        for fid in list(self._pending):
            data = await self.local.get(fid)
            if data is not None:
                await self.shared.r.set(self.prefix + fid, data)
                n += 1
            self._pending.discard(fid)  # only once Redis has it
        return f"{n} files put here meanwhile stored in Redis" if n else ""


FileStore = DiskFiles | RedisFiles
