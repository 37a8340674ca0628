"""Hostile and malformed request bodies (issue #10, items 15 and 16): every one
gets a Jobe-style answer (a JSON string, 4xx), never a 500 or a traceback, and
an oversize body is refused without the gateway buffering it."""

from __future__ import annotations

import base64
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from procs import API, Proc, start_backend, start_gateway, write_config

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def small_gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Proc, Path]]:
    """A gateway whose body caps are 1 MiB for runs and 2 MiB for files."""
    tmp = tmp_path_factory.mktemp("gwin")
    b = start_backend(tmp)
    extra = f'[gateway]\nfiles_dir = "{tmp / "files"}"\nmax_run_body = {MiB}\n'
    extra += f"max_file_body = {2 * MiB}\n"
    cfg = write_config(tmp / "gw.toml", [{"url": b.url}], extra)
    g = start_gateway(cfg)  # with the access log: the log must still hold no traceback
    yield g, cfg.with_suffix(f".{g.url.rsplit(':', 1)[1]}.log")
    g.stop()
    b.stop()


def peak_rss_mb(p: Proc) -> float:
    for line in Path(f"/proc/{p.popen.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def raw_exchange(url: str, head: bytes, body_bytes: int, chunked: bool = False) -> bytes:
    """Send ``head`` then up to ``body_bytes`` of body from a thread while reading
    the answer; returns what the gateway answered (it may close mid-body)."""
    host, port = url.removeprefix("http://").split(":")
    s = socket.create_connection((host, int(port)), timeout=30)
    s.sendall(head)
    stop = threading.Event()

    def feed() -> None:
        block = b"x" * (256 * 1024)
        sent = 0
        try:
            while sent < body_bytes and not stop.is_set():
                s.sendall(b"%x\r\n%s\r\n" % (len(block), block) if chunked else block)
                sent += len(block)
        except OSError:
            pass  # the gateway closed: what we wanted

    t = threading.Thread(target=feed, daemon=True)
    t.start()
    got = b""
    try:
        while b"\r\n\r\n" not in got or len(got) < got.find(b"\r\n\r\n") + 4 + 20:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    except OSError:
        pass
    stop.set()
    s.close()
    t.join(10)
    return got


def test_oversize_run_and_put_are_refused_with_413_without_buffering(
    small_gw: tuple[Proc, Path],
) -> None:
    g, log = small_gw
    before = peak_rss_mb(g)
    big = 100 * MiB
    runs = f"POST {API}/runs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    got = raw_exchange(g.url, (runs + f"Content-Length: {big}\r\n\r\n").encode(), big)
    assert got.startswith(b"HTTP/1.1 413"), got[:200]
    assert b"exceeds" in got
    # no Content-Length: counted as it streams in, refused once over the cap
    got = raw_exchange(g.url, (runs + "Transfer-Encoding: chunked\r\n\r\n").encode(), big, True)
    assert got.startswith(b"HTTP/1.1 413"), got[:200]
    # Expect: 100-continue (curl, for large bodies): refused before a byte is sent
    got = raw_exchange(
        g.url, (runs + f"Content-Length: {big}\r\nExpect: 100-continue\r\n\r\n").encode(), 0
    )
    assert got.startswith(b"HTTP/1.1 413"), got[:200]
    put = f"PUT {API}/files/bigfile1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    got = raw_exchange(g.url, (put + f"Content-Length: {big}\r\n\r\n").encode(), big)
    assert got.startswith(b"HTTP/1.1 413"), got[:200]
    assert httpx.head(g.url + API + "/files/bigfile1").status_code == 404  # not stored
    # three 100 MiB bodies went by: the gateway's peak memory grew by far less
    assert peak_rss_mb(g) - before < 40, (before, peak_rss_mb(g))
    # under the caps all is as before: a 0.9 MiB run and a 1.4 MiB file are taken
    spec = {"language_id": "python3", "sourcecode": "print(len(input()))", "input": "y" * 900_000}
    r = httpx.post(g.url + API + "/runs", json={"run_spec": spec}, timeout=60)
    assert r.status_code == 200 and r.json()["stdout"] == "900000\n"
    data = base64.b64encode(b"z" * 1_000_000).decode()
    r = httpx.put(g.url + API + "/files/bigfile2", json={"file_contents": data})
    assert r.status_code == 204
    # a well-behaved client over the cap gets the answer too (httpx sends it all first)
    spec["input"] = "y" * (MiB + 10)
    r = httpx.post(g.url + API + "/runs", json={"run_spec": spec}, timeout=60)
    assert r.status_code == 413 and "exceeds" in r.json()
    assert "Traceback" not in log.read_text()


def deep(n: int) -> str:
    return "[" * n + "]" * n


def test_malformed_bodies_get_jobe_answers_json_strings_without_traceback(
    small_gw: tuple[Proc, Path],
) -> None:
    """Each gets what Jobe answers (a JSON string; 500 where PHP fails), never a
    traceback in the gateway's log."""
    g, log = small_gw
    runs, files = g.url + API + "/runs", g.url + API + "/files/"
    hdr = {"Content-Type": "application/json"}
    too_deep = "Server exception (Failed to parse JSON string. Error: Maximum stack depth exceeded)"
    cases = [
        ("POST", runs, '{"run_spec": ' + deep(100_000) + "}", 500, too_deep),
        ("POST", runs, deep(100_000), 500, too_deep),
        (
            "POST",
            runs,
            '{"run_spec": {"language_id": "python3", "sourcecode": "x", "x": ' + deep(600) + "}}",
            500,
            too_deep,
        ),
        ("PUT", files + "abc", '{"file_contents": ' + deep(100_000) + "}", 500, ""),
        ("PUT", files + "abc", deep(100_000), 500, ""),
        ("PUT", files + "abc", '{"file_contents": {"a": [1, 2]}}', 500, ""),
        (
            "PUT",
            files + "abc",
            '{"file_contents": ' + json.dumps({"a": {"b": [[1]]}}) + "}",
            500,
            "",
        ),
        ("PUT", files + "a" * 5000, '{"file_contents": "eA=="}', 500, "put: failed to write file "),
        ("PUT", files + "a" * 300, '{"file_contents": "eA=="}', 500, "put: failed to write file "),
    ]
    for method, url, body, status, text in cases:
        r = httpx.request(method, url, content=body.encode(), headers=hdr, timeout=30)
        assert r.status_code == status, (method, url[-40:], body[:60], r.status_code, r.text[:80])
        assert isinstance(r.json(), str) and r.json().startswith(text), r.text[:80]
    assert httpx.head(files + "a" * 5000).status_code == 404
    long_id = {"language_id": "python3", "sourcecode": "x", "file_list": [["a" * 5000, "f"]]}
    r = httpx.post(runs, json={"run_spec": long_id})
    assert r.status_code == 404 and "files" in r.json()
    long_name = {"language_id": "python3", "sourcecode": "x", "file_list": [["abc", "f" * 5000]]}
    assert httpx.post(runs, json={"run_spec": long_name}).status_code == 400
    text = log.read_text()
    assert "Traceback" not in text and "Exception" not in text, text[-2000:]
    # a 255-character id (the longest a file name can be) is still a good one
    r = httpx.put(files + "b" * 255, json={"file_contents": "eA=="})
    assert r.status_code == 204
