"""The gateway's own file store: on disk for one gateway, in Redis for several."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

# Jobe's file ids are file names in its cache: letters and digits (Moodle
# sends a hash). At most 200, so ``.<id>.tmp`` fits in a file name (255 bytes).
FILE_ID = re.compile(r"[A-Za-z0-9]{1,200}")  # fullmatch


def valid_id(fid: str) -> bool:
    return FILE_ID.fullmatch(fid) is not None


class DiskFiles:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    async def put(self, fid: str, data: bytes) -> None:
        tmp = self.root / f".{fid}.tmp"
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
    def __init__(self, redis: Any, prefix: str) -> None:
        self.r = redis
        self.prefix = prefix + "file:"

    async def put(self, fid: str, data: bytes) -> None:
        await self.r.set(self.prefix + fid, data)

    async def get(self, fid: str) -> bytes | None:
        v = await self.r.get(self.prefix + fid)
        return bytes(v) if v is not None else None

    async def exists(self, fid: str) -> bool:
        return bool(await self.r.exists(self.prefix + fid))


FileStore = DiskFiles | RedisFiles
