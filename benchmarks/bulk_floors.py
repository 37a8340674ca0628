"""What moving bytes costs on this machine, before any tool (issue 17).

CPU seconds per GiB over loopback, sender and receiver in two processes:
plain TCP (send / os.sendfile; recv_into a buffer, os.write to a file), TLS
through Python's ssl module on raw sockets (1 MiB writes), and what a keyed
MAC or an AEAD costs per 1 MiB chunk. Also whether kernel TLS can be had
here (the `tls` ULP, and ssl.OP_ENABLE_KTLS, which Python has from 3.12).

    .venv/bin/python benchmarks/bulk_floors.py [--mib 1024] [--json out.json]

The bulk data plane (tree/bulk.py) is measured against these floors by
benchmarks/broadcast.py --parts cpu.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import multiprocessing as mp
import os
import socket
import ssl
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from plain_chain import CHUNK, PIECE, cpu, fill, write_pieces  # noqa: E402

GIB = 1 << 30
SETTLE_S = 10.0


def settle() -> None:
    """Wait until the memory freed by the steps before is the VM's again.

    What writing a page of page cache costs on this VM depends on the page:
    one freed less than ~0.5 s ago costs ~0.2 s/GiB of system time, one the
    guest has handed back to the host (free page reporting, within 1-8 s)
    ~2 s/GiB. A tool that takes a second to start (`shoal copy`, clush)
    cannot start on the first kind, so every measured step, floor or tool,
    starts after this, on the second: the state of a node whose memory has
    not just been used."""
    time.sleep(SETTLE_S)


def warm(total: int) -> None:
    """Write and remove `total` bytes of page cache: the next write that
    starts at once gets pages just freed (the cheap kind, see settle())."""
    block = os.urandom(1 << 20)
    path = Path("/tmp") / f"shoal-warm-{os.getpid()}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for _ in range(total >> 20):
            os.write(fd, block)
    finally:
        os.close(fd)
        path.unlink()


def _tls_contexts(tmp: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    from shoal.core import tls

    if not (tmp / "ca.crt").exists():
        tls.init_ca(tmp)
        tls.issue(tmp, "a")
        tls.issue(tmp, "b")
    a, b = tls.Identity.in_dir(tmp, "a"), tls.Identity.in_dir(tmp, "b")
    srv = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    srv.load_cert_chain(a.cert, a.key)
    srv.load_verify_locations(a.ca_cert)
    srv.verify_mode = ssl.CERT_REQUIRED
    cli = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    cli.load_cert_chain(b.cert, b.key)
    cli.load_verify_locations(b.ca_cert)
    return srv, cli


def _sender(port: int, path: str, mode: str, tmp: str, q: mp.Queue) -> None:  # type: ignore[type-arg]
    s = socket.create_connection(("127.0.0.1", port))
    size = os.path.getsize(path)
    fd = os.open(path, os.O_RDONLY)
    t0 = cpu()
    if mode == "sendfile":
        off = 0
        while off < size:
            off += os.sendfile(s.fileno(), fd, off, size - off)
    else:
        if mode == "tls":
            _, cli = _tls_contexts(Path(tmp) / "tls")
            cli.check_hostname = False
            s = cli.wrap_socket(s, server_hostname="a")
        buf = bytearray(CHUNK)
        off = 0
        while off < size:
            n = os.preadv(fd, [buf], off)
            s.sendall(memoryview(buf)[:n])
            off += n
    s.close()
    q.put(cpu() - t0)


def transfer(path: Path, mode: str, tmp: Path) -> tuple[float, float, float]:
    """(sender CPU, receiver CPU incl. the file write, wall) in seconds."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen()
    q: mp.Queue = mp.Queue()  # type: ignore[type-arg]
    srv = None
    if mode == "tls":
        srv, _ = _tls_contexts(tmp / "tls")
    p = mp.get_context("fork").Process(
        target=_sender, args=(lsock.getsockname()[1], str(path), mode, str(tmp), q)
    )
    w0 = time.perf_counter()
    p.start()
    conn, _ = lsock.accept()
    if srv is not None:
        conn = srv.wrap_socket(conn, server_side=True)
    out = os.open(tmp / f"out-{mode}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    t0 = cpu()
    while got := fill(conn, view):
        write_pieces(out, view[:got])  # see pieces()
    recv = cpu() - t0
    wall = time.perf_counter() - w0
    os.close(out)
    os.unlink(tmp / f"out-{mode}")
    p.join()
    return q.get(), recv, wall


def pieces(mib: int, sizes: tuple[int, ...] = (PIECE, CHUNK), rounds: int = 3) -> dict[str, float]:
    """CPU s/GiB of writing a new file in writes of each size, each after
    settle(), the lowest of `rounds` (the sizes taken in turn): what
    tree/spool.py's PIECE is chosen by."""
    got: dict[int, list[float]] = {}
    path = Path("/tmp") / f"shoal-pieces-{os.getpid()}"
    for size in sizes * rounds:
        block = os.urandom(size)
        settle()
        t0 = cpu()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            for _ in range((mib << 20) // size):
                os.write(fd, block)
        finally:
            os.close(fd)
        got.setdefault(size, []).append((cpu() - t0) * GIB / (mib << 20))
        path.unlink()
    return {f"{size >> 10} KiB writes": round(min(v), 3) for size, v in got.items()}


def macs(mib: int) -> dict[str, float]:
    """CPU seconds per GiB of each keyed MAC / AEAD over 1 MiB chunks."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

    data = os.urandom(CHUNK)
    key = os.urandom(32)
    n = mib
    out: dict[str, float] = {}

    def run(name: str, fn: object) -> None:
        t0 = cpu()
        for i in range(n):
            fn(i)  # type: ignore[operator]
        out[name] = round((cpu() - t0) * GIB / (n * CHUNK), 3)

    import xxhash

    run("xxh3_128 (end-to-end hash)", lambda i: xxhash.xxh3_128(data).digest())
    run("blake2b keyed", lambda i: hashlib.blake2b(data, key=key, digest_size=16).digest())
    run("hmac sha256", lambda i: hmac.digest(key, data, "sha256"))
    gcm = AESGCM(key)
    run("AES-GCM tag only (GMAC, data as AAD)", lambda i: gcm.encrypt(i.to_bytes(12), b"", data))
    run("AES-256-GCM encrypt", lambda i: gcm.encrypt(i.to_bytes(12), data, None))
    cc = ChaCha20Poly1305(key)
    run("ChaCha20-Poly1305 encrypt", lambda i: cc.encrypt(i.to_bytes(12), data, None))
    return out


def ktls() -> dict[str, object]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    c = socket.create_connection(s.getsockname())
    try:
        c.setsockopt(socket.SOL_TCP, 31, b"tls")  # TCP_ULP
        ulp = "available"
    except OSError as e:
        ulp = f"not available: {e.strerror} (no kernel tls module)"
    finally:
        c.close()
        s.close()
    return {
        "kernel tls ULP": ulp,
        "ssl.OP_ENABLE_KTLS": hasattr(ssl, "OP_ENABLE_KTLS"),
        "python": sys.version.split()[0],
        "openssl": ssl.OPENSSL_VERSION,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=1024)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    res: dict[str, object] = {"ktls": ktls(), "mac_cpu_s_per_gib": macs(min(args.mib, 512))}
    res["write pieces: cpu s/GiB of a new file"] = pieces(args.mib)
    with tempfile.TemporaryDirectory(dir="/tmp") as d:
        tmp = Path(d)
        src = tmp / "payload"
        with src.open("wb") as f:
            for _ in range(args.mib):
                f.write(os.urandom(CHUNK))
        scale = GIB / (args.mib * CHUNK)
        runs: dict[str, list[tuple[float, float, float]]] = {}
        for mode in ("plain", "sendfile", "tls") * 3:
            settle()  # see settle(): else the pages decide
            runs.setdefault(mode, []).append(transfer(src, mode, tmp))
            warm(2 * args.mib * CHUNK)
            runs.setdefault(f"{mode}, pages just freed", []).append(transfer(src, mode, tmp))
        for mode, rs in runs.items():  # the lowest of three
            res[f"{mode}: sender cpu s/GiB"] = round(min(r[0] for r in rs) * scale, 3)
            res[f"{mode}: receiver (incl. write) cpu s/GiB"] = round(
                min(r[1] for r in rs) * scale, 3
            )
            res[f"{mode}: wall s/GiB"] = round(min(r[2] for r in rs) * scale, 3)
    print(json.dumps(res, indent=2))
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
