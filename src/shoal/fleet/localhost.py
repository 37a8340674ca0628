"""One host of the ``local`` provider: ``python -m shoal.fleet.localhost LOCK KEY -- ARGV``.

The host takes an exclusive lock on LOCK (one file per node name), writes
``KEY PID`` into it and replaces itself with ARGV (the agent): the lock is
held by the agent process for its whole life (POSIX locks survive exec) and
released by the kernel when it ends, however it ends. So "a host of this
name is running, made for operation KEY" is a fact the kernel keeps, not a
record the controller might have died before writing; a second host of the
same name cannot start at all (it exits 75 without running anything).
"""

from __future__ import annotations

import fcntl
import os
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

EX_HELD = 75  # another host of this name holds the lock
# struct flock on Linux: l_type, l_whence (short), l_start, l_len (off_t), l_pid (pid_t)
_FLOCK = "hhqqi4x"


@dataclass(frozen=True)
class Holder:
    pid: int
    key: str


def holder(lock: Path) -> Holder | None:
    """The process holding ``lock`` (the live host) and the key it was made for."""
    try:
        fd = os.open(lock, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        probe = struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
        l_type, _, _, _, pid = struct.unpack(_FLOCK, fcntl.fcntl(fd, fcntl.F_GETLK, probe))
        if l_type == fcntl.F_UNLCK:
            return None
        words = os.pread(fd, 512, 0).decode(errors="replace").split()
    finally:
        os.close(fd)
    # the host writes its key just after locking: in that instant it is unknown
    key = words[0] if len(words) == 2 and words[1] == str(pid) else ""
    return Holder(pid, key)


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[2] != "--":
        print("usage: python -m shoal.fleet.localhost LOCK KEY -- ARGV...", file=sys.stderr)
        return 2
    lock, key, cmd = argv[0], argv[1], argv[3:]
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        print(f"another host holds {lock}: not starting", file=sys.stderr)
        return EX_HELD
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{key} {os.getpid()}\n".encode(), 0)
    os.set_inheritable(fd, True)  # the lock lives as long as this fd in the agent
    os.execvp(cmd[0], cmd)
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
