"""The bulk data plane of `shoal copy` (tree/bulk.py) against real agents
over real sockets: a man in the middle on loopback who flips one byte of the
bulk stream is refused and leaves nothing behind; a connection with a token
the agent never offered is closed; `--bulk mac` sends the bytes in the clear
(tagged) and the default does not."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from agentproc import Agent, Agents, wait_for

from shoal.core import tls

SHOAL = [sys.executable, "-m", "shoal.cli.main"]
MITM_HOST = "127.0.0.2"  # the agent listens on 127.0.0.1 only: this address is the proxy's


class Proxy:
    """Forwards MITM_HOST:port to 127.0.0.1:port; on the way to the agent it
    records what passes and, with flip_at, flips one bit at that position of
    each connection."""

    def __init__(self, port: int, flip_at: int | None = None) -> None:
        self.target = ("127.0.0.1", port)
        self.flip_at = flip_at
        self.seen = bytearray()
        self.flipped = 0
        self.sock = socket.create_server((MITM_HOST, port))
        self._lock = threading.Lock()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            threading.Thread(target=self._pipe, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, False), daemon=True).start()

    def _pipe(self, a: socket.socket, b: socket.socket, up: bool) -> None:
        pos = 0
        try:
            while data := a.recv(1 << 16):
                if up and self.flip_at is not None and pos <= self.flip_at < pos + len(data):
                    buf = bytearray(data)
                    buf[self.flip_at - pos] ^= 0x01
                    data = bytes(buf)
                    with self._lock:
                        self.flipped += 1
                if up:
                    with self._lock:
                        if len(self.seen) < 8 << 20:
                            self.seen += data
                pos += len(data)
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def close(self) -> None:
        self.sock.close()


def bulk_port(agent: Agent) -> int:
    found: list[int] = []

    def logged() -> bool:
        m = re.search(r"copy bulk port (\d+)", agent.log_text())
        if m:
            found.append(int(m.group(1)))
        return bool(m)

    wait_for(logged, "the agent saying its bulk port")
    return found[0]


@pytest.fixture
def node(agents: Agents, tmp_path: Path) -> Agent:
    root = tmp_path / "root"
    (root / "dest").mkdir(parents=True)
    return agents.start("n1", files_root=root)


@pytest.fixture
def proxies(agents: Agents, node: Agent, request: pytest.FixtureRequest) -> Iterator[Proxy]:
    """A transparent proxy for the control port, one (flipping a byte of the
    first frame's data, when the test says so) for the bulk port."""
    try:
        socket.create_server((MITM_HOST, 0)).close()
    except OSError:
        pytest.skip(f"{MITM_HOST} is not a loopback address here")
    flip = getattr(request, "param", None)
    control, data = Proxy(node.port), Proxy(bulk_port(node), flip_at=flip)
    inv = agents.home / "inventory.toml"
    inv.write_text(f'[nodes]\nn1 = "{MITM_HOST}:{node.port}"\n')
    try:
        yield data
    finally:
        control.close()
        data.close()


def copy(src: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SHOAL, "copy", "-w", "n1", *args, str(src), "/dest/"],
        capture_output=True,
        text=True,
        timeout=120,
    )


def leftovers(root: Path) -> list[Path]:
    return [p for p in (root / "dest").iterdir()]


# 16 bytes of token, a 12-byte frame header, then 1000 bytes into the data
@pytest.mark.parametrize("proxies", [16 + 12 + 1000], indirect=True)
@pytest.mark.parametrize("mode", ["aead", "mac"])
def test_a_byte_flipped_in_flight_is_refused_and_nothing_is_left(
    proxies: Proxy, node: Agent, tmp_path: Path, mode: str
) -> None:
    src = tmp_path / "big"
    src.write_bytes(os.urandom(3_000_000))
    r = copy(src, "--bulk", mode)
    assert proxies.flipped == 1
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "FAILED: n1, SUM: 1" in r.stdout, r.stdout
    assert "n1: FAILED: bulk stream refused: the chunk at offset 0 failed authentication" in (
        r.stderr
    )
    assert "Traceback" not in r.stdout + r.stderr
    wait_for(lambda: leftovers(tmp_path / "root") == [], "the part removed")


def test_through_the_proxy_untouched_the_copy_passes(
    proxies: Proxy, node: Agent, tmp_path: Path
) -> None:
    src = tmp_path / "big"
    src.write_bytes(os.urandom(3_000_000))
    r = copy(src)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert (tmp_path / "root" / "dest" / "big").read_bytes() == src.read_bytes()
    # the default bulk stream is encrypted: no run of the source is on the wire
    assert src.read_bytes()[100_000:100_064] not in proxies.seen


def test_bulk_mac_sends_the_bytes_in_the_clear_and_says_so(
    proxies: Proxy, node: Agent, tmp_path: Path
) -> None:
    src = tmp_path / "big"
    src.write_bytes(os.urandom(3_000_000))
    r = copy(src, "--bulk", "mac")
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert (tmp_path / "root" / "dest" / "big").read_bytes() == src.read_bytes()
    assert src.read_bytes()[100_000:100_064] in proxies.seen
    assert "PLAIN TEXT" in r.stderr
    assert "PLAIN TEXT bulk stream" in node.log_text()


def test_a_connection_with_a_token_never_offered_is_closed(node: Agent) -> None:
    with socket.create_connection(("127.0.0.1", bulk_port(node)), timeout=30) as s:
        s.sendall(os.urandom(16) + b"x" * 1000)
        try:
            answer = s.recv(100)
        except ConnectionResetError:  # closed with our bytes unread
            answer = b""
        assert answer == b""  # closed without a word
    wait_for(lambda: "unknown token: closed" in node.log_text(), "the refusal logged")


def test_a_connection_that_ends_before_its_token_is_closed(node: Agent) -> None:
    with socket.create_connection(("127.0.0.1", bulk_port(node)), timeout=30) as s:
        s.sendall(b"short")
        s.shutdown(socket.SHUT_WR)
        try:
            answer = s.recv(100)
        except ConnectionResetError:
            answer = b""
        assert answer == b""
    # refused as cut short, before any token was compared
    assert "unknown token" not in node.log_text()


def test_an_unknown_bulk_mode_is_one_line(node: Agent, agents: Agents, tmp_path: Path) -> None:
    agents.inventory()
    src = tmp_path / "f"
    src.write_bytes(b"x")
    r = copy(src, "--bulk", "tls")
    assert r.returncode == 2 and "bulk mode must be one of aead, mac, grpc" in r.stderr
    assert "Traceback" not in r.stderr


def test_under_insecure_the_bulk_stream_still_carries_the_copy(
    agents: Agents, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    (root / "dest").mkdir(parents=True)
    agents.start("n1", insecure=True, files_root=root)
    agents.inventory()
    src = tmp_path / "big"
    src.write_bytes(os.urandom(2_000_000))
    r = copy(src, "--insecure")
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert (root / "dest" / "big").read_bytes() == src.read_bytes()


def test_the_bulk_port_can_be_fixed_and_a_taken_one_is_one_line(
    agents: Agents, tmp_path: Path
) -> None:
    from agentproc import free_port

    from shoal.deploy import AgentNode, agent_argv, agent_env

    tls_dir = agents.home / "tls"
    agents.start("n0")  # makes the CA
    port = free_port()
    tls.issue(tls_dir, "n1")
    argv = [*agent_argv([AgentNode("n1", tls_dir=tls_dir)]), "--bulk-port", str(port)]
    first = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                             env=agent_env())  # fmt: skip
    try:
        assert first.stdout is not None and first.stdout.readline().startswith("ready n1 ")
        second = subprocess.run(argv, capture_output=True, text=True, env=agent_env(), timeout=60)
        assert second.returncode != 0
        assert f"cannot open the copy bulk port 127.0.0.1:{port}" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        first.terminate()
        first.wait(timeout=30)


def test_a_chunk_buffer_is_used_again_only_once_nothing_views_it() -> None:
    from shoal.tree.bulk import Buffers

    pool = Buffers(1 << 16)
    held = memoryview(pool.take())[:100]  # a chunk still in Recent or being sent
    other = memoryview(pool.take())
    assert other.obj is not held.obj
    first = id(held.obj)
    del held, other
    again = pool.take()
    assert id(again) == first  # the oldest, now free, comes back


def test_recent_keeps_only_what_a_child_still_needs() -> None:
    from shoal.tree.bulk import RECENT_BYTES, Recent

    chunk = b"x" * 1024
    leaf = Recent()  # no child is fed: only the last two chunks stay
    for i in range(10):
        leaf.add(i * 1024, chunk, None)
    assert leaf.get(0, 1024) is None and leaf.get(7 * 1024, 1024) is None
    assert leaf.get(8 * 1024, 1024) is not None and leaf.get(9 * 1024, 1024) is not None

    relay = Recent()  # a child has sent up to 4 KiB: from there on stays
    for i in range(10):
        relay.add(i * 1024, chunk, 4 * 1024)
    assert relay.get(3 * 1024, 1024) is None
    assert all(relay.get(i * 1024, 1024) is not None for i in range(4, 10))

    slow = Recent()  # a child that needs the start still gets at most RECENT_BYTES
    big = b"y" * (1 << 20)
    n = RECENT_BYTES // len(big) + 4
    for i in range(n):
        slow.add(i * len(big), big, 0)
    assert slow.get(0, 10) is None
    assert slow.get((n - 1) * len(big), 10) is not None
