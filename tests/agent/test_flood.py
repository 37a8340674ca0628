"""Connections that never authenticate: the agent drops them once the handshake
time is up, keeps answering operators meanwhile, and logs nothing per socket."""

from __future__ import annotations

import socket
import time

from agentproc import Agents, shoal, wait_for

from shoal.agent.server import HANDSHAKE_TIMEOUT


def _closed(s: socket.socket) -> bool:
    try:
        return s.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def test_idle_unauthenticated_connections_are_dropped(agents: Agents) -> None:
    a = agents.start("n1")
    inv = agents.inventory()
    socks = []
    try:
        for _ in range(300):
            s = socket.create_connection(("127.0.0.1", a.port))
            s.setblocking(False)
            socks.append(s)
        cp = shoal("ping", "--inventory", str(inv), "-w", "n1")
        assert cp.returncode == 0, cp.stdout + cp.stderr  # the operator still gets in
        lines_before = len(a.log_text().splitlines())
        time.sleep(HANDSHAKE_TIMEOUT)
        wait_for(lambda: all(_closed(s) for s in socks), "every idle socket dropped")
        assert len(a.log_text().splitlines()) - lines_before < 5  # no line per socket
    finally:
        for s in socks:
            s.close()
