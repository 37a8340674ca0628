"""The floor of a relayed broadcast (issue 17): the same bytes down a chain
of plain Python processes, with no tool around them: each node takes one TCP
connection, reads 1 MiB at a time into one buffer, writes it to its file (in
64 KiB writes, the cheapest here, see bulk_floors.py) and sends it on to the
next node; each lets go of its pages once on disk (as tree/spool.py) and
flushes its file to disk, as a copy must be before it is put in place. No
encryption, no hash, no protocol.

    python benchmarks/plain_chain.py node --listen IP:PORT --out FILE [--next IP:PORT]
    python benchmarks/plain_chain.py send --to IP:PORT FILE

A node prints one line when it listens, then at the end a JSON line: its CPU
seconds and the seconds from its first byte to its file flushed. The sender
uses os.sendfile, the cheapest send there is. run_chain() runs a whole chain
(benchmarks/broadcast.py, broadcast_cpu.py).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

CHUNK = 1 << 20
PIECE = 64 << 10
WINDOW = 16 << 20  # as tree/spool.py's WRITEBACK


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def addr(s: str) -> tuple[str, int]:
    host, _, port = s.rpartition(":")
    return host, int(port)


def fill(conn: socket.socket, view: memoryview) -> int:
    """Read until view is full (a whole chunk, as a spool write takes it) or
    the stream ends; the bytes read (0: it had ended)."""
    got = 0
    while got < len(view):
        n = conn.recv_into(view[got:])
        if not n:
            break
        got += n
    return got


def write_pieces(fd: int, view: memoryview) -> None:
    """Write view to fd in PIECE writes, as tree/spool.py does (see there)."""
    for off in range(0, len(view), PIECE):
        os.write(fd, view[off : off + PIECE])


class Behind:
    """As tree/spool.py: start the writeback of every WINDOW written, and let
    go of the pages whose writeback started a window before (no node of the
    chain reads its file back)."""

    def __init__(self, fd: int) -> None:
        self.fd, self.flushed = fd, 0

    def wrote(self, offset: int) -> None:
        if offset - self.flushed < WINDOW:
            return
        os.posix_fadvise(self.fd, self.flushed, offset - self.flushed, os.POSIX_FADV_DONTNEED)
        if self.flushed > WINDOW:
            os.posix_fadvise(self.fd, 0, self.flushed - WINDOW, os.POSIX_FADV_DONTNEED)
        self.flushed = offset


def node(listen: str, out: str, nxt: str | None) -> None:
    ls = socket.create_server(addr(listen))
    print("listening", flush=True)
    down = socket.create_connection(addr(nxt)) if nxt else None
    conn, _ = ls.accept()
    t0 = cpu()
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    first = 0.0
    total = 0
    behind = Behind(fd)
    while got := fill(conn, view):
        first = first or time.perf_counter()
        write_pieces(fd, view[:got])
        if down is not None:
            down.sendall(view[:got])
        total += got
        behind.wrote(total)
    if down is not None:
        down.close()
    os.fdatasync(fd)
    os.close(fd)
    os.unlink(out)  # measured: the next step starts with its memory free
    json.dump(
        {"cpu_s": cpu() - t0, "bytes": total, "span_s": time.perf_counter() - (first or 0)},
        sys.stdout,
    )
    print(flush=True)


def send(to: str, path: str) -> None:
    s = socket.create_connection(addr(to))
    fd = os.open(path, os.O_RDONLY)
    size = os.fstat(fd).st_size
    t0 = cpu()
    off = 0
    while off < size:
        off += os.sendfile(s.fileno(), fd, off, size - off)
    s.close()
    print(json.dumps({"cpu_s": cpu() - t0, "bytes": size}), flush=True)


def run_chain(
    src: Path,
    addrs: list[str],
    outs: list[str],
    wrap: Callable[[int, list[str]], list[str]] = lambda i, argv: argv,
) -> dict[str, object]:
    """src down a chain of len(addrs) nodes (node i listens on addrs[i],
    writes outs[i], runs as wrap(i, argv)); each node's CPU s/GiB, the span
    from the first byte to the last file flushed, the sender's CPU."""
    me = str(Path(__file__).resolve())
    size = src.stat().st_size
    procs: list[subprocess.Popen[str]] = []
    try:
        for i in reversed(range(len(addrs))):  # each connects to the next as it starts
            argv = [sys.executable, me, "node", "--listen", addrs[i], "--out", outs[i]]
            if i < len(addrs) - 1:
                argv += ["--next", addrs[i + 1]]
            p = subprocess.Popen(wrap(i, argv), stdout=subprocess.PIPE, text=True)
            procs.append(p)
            assert p.stdout is not None
            if p.stdout.readline().strip() != "listening":
                raise RuntimeError(f"plain chain node {i} did not start")
        t0 = time.perf_counter()
        sender = subprocess.run(
            [sys.executable, me, "send", "--to", addrs[0], str(src)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        outs_ = [json.loads(p.stdout.readline()) for p in reversed(procs)]  # type: ignore[union-attr]
        wall = time.perf_counter() - t0
    finally:
        for p in procs:
            p.kill()
            p.wait()
    return {
        "wall_s": wall,
        "rc": 0 if all(o["bytes"] == size for o in outs_) else 1,
        "passed": sum(o["bytes"] == size for o in outs_),
        "span_s": round(max(o["span_s"] for o in outs_), 2),
        "cpu_s_per_gib": [round(o["cpu_s"] * 2**30 / size, 3) for o in outs_],
        "sender_cpu_s_per_gib": round(json.loads(sender.stdout)["cpu_s"] * 2**30 / size, 3),
        "stderr": sender.stderr.strip()[-300:],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="role", required=True)
    n = sub.add_parser("node")
    n.add_argument("--listen", required=True)
    n.add_argument("--out", required=True)
    n.add_argument("--next")
    s = sub.add_parser("send")
    s.add_argument("--to", required=True)
    s.add_argument("path")
    a = ap.parse_args()
    if a.role == "node":
        node(a.listen, a.out, a.next)
    else:
        send(a.to, a.path)


if __name__ == "__main__":
    main()
