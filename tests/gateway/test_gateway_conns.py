"""Connections that never send a request (issue #10, item 13): an attacker's
few hundred idle sockets against a gateway with a low open-file limit. The
gateway holds at most ``max_connections_per_source`` of them, closes those
after ``head_timeout``, logs the flood once (not per connection), and a
well-behaved client from another address is served throughout."""

from __future__ import annotations

import json
import select
import socket
import time
from pathlib import Path

import httpx
from procs import API, Proc, start_backend, start_gateway, write_config

ATTACKER = "127.0.0.2"  # loopback has all of 127/8: the attacker's own source address
RUN = {"run_spec": {"language_id": "python3", "sourcecode": "print(6*7)"}}


def connect_many(url: str, n: int, source: str = ATTACKER) -> list[socket.socket]:
    host, port = url.removeprefix("http://").split(":")
    out = []
    for _ in range(n):
        s = socket.socket()
        s.bind((source, 0))
        s.settimeout(5)
        s.connect((host, int(port)))  # the kernel completes it, accepted or not
        out.append(s)
    return out


def wait_all_closed(socks: list[socket.socket], within: float) -> dict[str, int]:
    """Read every socket until the gateway closes it; count how each ended."""
    ended = {"refused_503": 0, "closed": 0, "other": 0}
    left = {s.fileno(): (s, b"") for s in socks}
    deadline = time.monotonic() + within
    while left and time.monotonic() < deadline:
        ready, _, _ = select.select([v[0] for v in left.values()], [], [], 0.5)
        for s in ready:
            sock, got = left[s.fileno()]
            try:
                chunk = sock.recv(4096)
            except OSError:
                chunk = b""
            if chunk:
                left[s.fileno()] = (sock, got + chunk)
                continue
            del left[s.fileno()]
            kind = "closed" if not got else "refused_503" if got.startswith(b"HTTP/1.1 503") else ""
            ended[kind or "other"] += 1
    ended["still_open"] = len(left)
    for s in socks:
        s.close()
    return ended


def served(g: Proc) -> bool:
    with httpx.Client(timeout=10) as c:
        return all(
            c.post(g.url + API + "/runs", json=RUN).json()["outcome"] == 15 for _ in range(5)
        ) and (c.get(g.url + API + "/languages").status_code == 200)


def test_idle_connection_flood_is_bounded_and_logged_once(tmp_path: Path) -> None:
    b = start_backend(tmp_path)
    head = f'[gateway]\nfiles_dir = "{tmp_path / "files"}"\n'
    head += "head_timeout = 1.0\nmax_connections_per_source = 50\n"
    cfg = write_config(tmp_path / "gw.toml", [{"url": b.url, "capacity": 4}], head)
    g = start_gateway(cfg, "--quiet", nofile=256)
    log = cfg.with_suffix(f".{g.url.rsplit(':', 1)[1]}.log")
    try:
        assert served(g)
        for _round in range(2):
            idle = connect_many(g.url, 300)  # more than the gateway has descriptors
            assert served(g), "a well-behaved client was not served during the flood"
            held = httpx.get(g.url + "/shoal/status").json()["connections"]["open"]
            assert held <= 50 + 3, held  # the attacker's 50, this request's own, the client's
            # some wait in the kernel's accept queue and are taken as others time out
            ended = wait_all_closed(idle, within=60)
            assert ended["still_open"] == 0, ended  # none held past the head time-out
            assert ended["refused_503"] >= 50 and ended["other"] == 0, ended
        # a head that never ends, and one that goes on without end: both cut
        slow = connect_many(g.url, 1)[0]
        slow.sendall(b"POST " + API.encode() + b"/runs HTTP/1.1\r\nHost: x\r\nX-A: ")
        big = connect_many(g.url, 1)[0]
        big.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        try:
            for _ in range(100):
                big.sendall(b"X-Pad: " + b"p" * 1000 + b"\r\n")
        except OSError:
            pass  # closed by the gateway: what we want
        assert wait_all_closed([slow, big], within=20)["still_open"] == 0
        # bytes that are not HTTP, on 40 connections: 400 each, one log line
        junk = connect_many(g.url, 40)
        for s in junk:
            s.sendall(b"\x16\x03\x01\x02\x00 not http at all\r\n\r\n")
        assert wait_all_closed(junk, within=20)["other"] == 40  # answered (400), closed
        # a head and a large body in one write: the body is not taken for head
        spec = {
            "language_id": "python3",
            "sourcecode": "print(len(input()))",
            "input": "i" * 500_000,
        }
        body = json.dumps({"run_spec": spec}).encode()
        one = connect_many(g.url, 1, source="127.0.0.1")[0]
        one.sendall(
            f"POST {API}/runs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        one.settimeout(30)
        answer = b""
        while chunk := one.recv(65536):
            answer += chunk
        one.close()
        assert answer.startswith(b"HTTP/1.1 200") and b"500000" in answer, answer[:300]
        assert served(g)
        st = httpx.get(g.url + "/shoal/status").json()["connections"]
        assert st["open"] <= 3 and st["refused"] >= 100 and st["head_timeouts"] >= 100, st
        assert st["max_per_source"] == 50 and 16 <= st["max"] < 256 and st["invalid"] == 40, st
    finally:
        g.stop()
        b.stop()
    text = log.read_text()
    assert "Traceback" not in text, text[-3000:]
    # 700 connections refused, timed out or not HTTP: a line each kind, not one each
    assert len(text.splitlines()) <= 4, text
    assert ATTACKER in text
