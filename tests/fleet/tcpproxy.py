"""A loopback TCP proxy in front of a real server, to make it hang or refuse.

``forward``: bytes flow both ways. ``hang``: connections stay open and new
ones are accepted, but nothing is relayed (a database that stopped
answering). ``refuse``: the port is closed and every connection with it (a
database that is down).
"""

from __future__ import annotations

import select
import socket
import threading
from typing import Any


class Proxy:
    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.mode = "forward"
        self.port = 0
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stop = False
        self._listen()

    def _listen(self) -> None:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(64)
        self.port = s.getsockname()[1]
        self._srv = s
        threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    def _accept(self, srv: socket.socket) -> None:
        while not self._stop:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            with self._lock:
                self._conns.append(c)
            threading.Thread(target=self._pipe, args=(c,), daemon=True).start()

    def _pipe(self, c: socket.socket) -> None:
        up: socket.socket | None = None
        try:
            while not self._stop and self.mode == "hang":
                select.select([], [], [], 0.05)
            if self.mode != "forward":
                return
            up = socket.create_connection(self.target)
            with self._lock:
                self._conns.append(up)
            pair = {c: up, up: c}
            while not self._stop:
                if self.mode == "hang":
                    select.select([], [], [], 0.05)
                    continue
                if self.mode == "refuse":
                    return
                ready, _, _ = select.select(list(pair), [], [], 0.05)
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    pair[s].sendall(data)
        except (OSError, ValueError):  # closed under us by refuse()
            pass
        finally:
            for s in (c, up):
                if s is not None:
                    s.close()

    def hang(self) -> None:
        self.mode = "hang"

    def forward(self) -> None:
        if self.mode == "refuse":
            self.mode = "forward"
            self._listen()
        self.mode = "forward"

    def refuse(self) -> None:
        self.mode = "refuse"
        self._srv.close()
        with self._lock:
            for s in self._conns:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            self._conns.clear()

    def close(self) -> None:
        self._stop = True
        self.refuse()

    def __enter__(self) -> Proxy:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
