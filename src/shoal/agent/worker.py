"""The runtime inside a faas container: `python -m shoal.agent.worker HANDLER`.

It talks to the agent in frames over its stdin/stdout pipes, which it moves
to private descriptors at once: fd 0 becomes /dev/null and fd 1 joins fd 2
(drained by the agent), so nothing the function prints can corrupt a frame.

A frame is ``>II`` (meta length, payload length), a JSON object, the payload.
Worker -> agent: {"ready": true} or {"error": line} once, then per call
{"id", "code", "message", "log", "ns"} with the body as payload. Agent ->
worker: {"id"} with the event as payload. EOF on the frame pipe ends the
worker and what it started. Calls run on kept threads, at most as many at
once as the agent lets in (its concurrency). Standard library only: this is
imported in every container.

A spare (SHOAL_SPARE in its environment, no HANDLER, agent/spares.py) works
in / and says {"spare": true} once started, then waits for {"handler",
"code_dir", "cwd"}: what it becomes, after which it goes on as a worker
started with them.
"""

from __future__ import annotations

import importlib
import inspect
import io
import json
import os
import queue
import re
import signal
import struct
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any, BinaryIO

HEADER = struct.Struct(">II")
MAX_META = 1 << 20  # bytes of a frame's JSON
MAX_PAYLOAD = 64 << 20  # bytes of an event or a body
LOG_LIMIT = 64 << 10  # bytes of function_log kept per call
MESSAGE_LIMIT = 1000  # characters of an error message (a frame's JSON stays small)
PYTHON_HANDLER = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def pack(meta: dict[str, Any], payload: bytes = b"") -> bytes:
    m = json.dumps(meta, separators=(",", ":")).encode()
    return HEADER.pack(len(m), len(payload)) + m + payload


class _Log:
    """A call's output, bounded: the first LOG_LIMIT bytes and a count of the rest."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.dropped = 0

    def add(self, data: bytes) -> None:
        room = LOG_LIMIT - len(self.buf)
        self.buf += data[: max(room, 0)]
        self.dropped += max(len(data) - max(room, 0), 0)

    def text(self) -> str:
        out = self.buf.decode(errors="replace")
        return out + (f"\n[{self.dropped} more bytes dropped]" if self.dropped else "")


class _PerCall(io.TextIOBase):
    """sys.stdout/sys.stderr: what a call's thread prints goes to that call's
    log; any other thread's to the real stderr."""

    def __init__(self, fallback: Any, local: threading.local) -> None:
        self.fallback = fallback
        self.local = local

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        log = getattr(self.local, "log", None)
        if log is None:
            return int(self.fallback.write(s))
        log.add(s.encode(errors="replace"))
        return len(s)

    def flush(self) -> None:
        if getattr(self.local, "log", None) is None:
            self.fallback.flush()

    def fileno(self) -> int:  # what writes to the descriptor goes to the agent's drain
        return int(self.fallback.fileno())


def _last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    line = lines[-1].strip() if lines else "unknown error"
    return line if len(line) <= MESSAGE_LIMIT else line[:MESSAGE_LIMIT] + "..."


def _event(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:  # not JSON (or not UTF-8): the bytes as they came
        return data


def _body(value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return json.dumps(value).encode()


class Worker:
    def __init__(self, handler: str, out: BinaryIO, local: threading.local) -> None:
        self.handler = handler
        self.out = out
        self.lock = threading.Lock()
        self.local = local  # .log: the calling thread's _Log
        self.fn: Callable[[Any], Any] | None = None

    def send(self, meta: dict[str, Any], payload: bytes = b"") -> None:
        with self.lock:
            self.out.write(pack(meta, payload))
            self.out.flush()

    def load(self) -> str:
        """ "" when ready, else the one line that says why not."""
        if not PYTHON_HANDLER.match(self.handler):
            return ""  # a command: run per call
        module, _, name = self.handler.partition(":")
        try:
            fn = getattr(importlib.import_module(module), name, None)
        except BaseException:  # whatever the module does at import: SystemExit too
            return _last_line(traceback.format_exc())
        if not callable(fn):
            return f"module {module} has no callable {name}"
        self.fn = fn
        return ""

    def call(self, cid: int, event: bytes) -> None:
        log = _Log()
        code = message = ""
        body = b""
        t0 = time.monotonic_ns()
        if self.fn is not None:
            self.local.log = log
            try:
                value = self.fn(_event(event))
                if inspect.iscoroutine(value):  # an async def handler
                    import asyncio

                    value = asyncio.run(value)
                body = _body(value)
            except BaseException as e:
                # from the function's frame down: the worker's own is no news to its author
                start = e.__traceback__.tb_next if e.__traceback__ is not None else None
                tb = "".join(traceback.format_exception(type(e), e, start))
                log.add(tb.encode(errors="replace"))
                code, message = "FUNCTION_ERROR", _last_line(tb)
            finally:
                self.local.log = None
        else:
            try:
                p = subprocess.run(
                    ["/bin/sh", "-c", self.handler], input=event, capture_output=True
                )
            except OSError as e:  # the process limit, memory
                code, message = "FUNCTION_ERROR", f"cannot run the command: {e}"
            else:
                body = p.stdout
                log.add(p.stderr)
                if p.returncode:
                    code = "FUNCTION_ERROR"
                    rc = p.returncode
                    message = f"killed by signal {-rc}" if rc < 0 else f"exit status {rc}"
        ns = time.monotonic_ns() - t0
        if len(body) > MAX_PAYLOAD:
            code, message = "FUNCTION_ERROR", f"body of {len(body)} bytes: above {MAX_PAYLOAD}"
            body = b""
        meta = {"id": cid, "code": code, "message": message, "log": log.text(), "ns": ns}
        self.send(meta, body)


class _Pool:
    """Call threads, kept: a thread made per call costs more CPU than a small
    function (the agent bounds the calls in flight, so the pool is bounded)."""

    def __init__(self, run: Callable[[int, bytes], None]) -> None:
        self.run = run
        self.jobs: queue.SimpleQueue[tuple[int, bytes]] = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.idle = 0

    def submit(self, cid: int, payload: bytes) -> None:
        with self.lock:
            grow = self.idle == 0
            self.idle -= 0 if grow else 1
        if grow:
            threading.Thread(target=self._serve, daemon=True).start()
        self.jobs.put((cid, payload))

    def _serve(self) -> None:
        while True:
            self.run(*self.jobs.get())
            with self.lock:
                self.idle += 1


def _read(f: BinaryIO, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = f.read(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def _become(inp: BinaryIO, out: BinaryIO) -> str:
    """A spare: say so, wait for the function, take its code directory and
    working directory; its handler. Exits when the agent closes us first."""
    out.write(pack({"spare": True}))
    out.flush()
    head = _read(inp, HEADER.size)
    if head is None:
        os._exit(0)
    mlen, plen = HEADER.unpack(head)
    meta = _read(inp, mlen) if mlen <= MAX_META and plen == 0 else None
    if meta is None:
        os._exit(1)
    init = json.loads(meta)
    if init.get("code_dir"):
        os.environ["SHOAL_CODE_DIR"] = str(init["code_dir"])
    cwd = str(init["cwd"])
    if sys.path and sys.path[0] == os.getcwd():  # -m put our start directory there
        sys.path[0] = cwd
    os.chdir(cwd)
    return str(init.get("handler", ""))


def main(argv: list[str]) -> None:
    inp = os.fdopen(os.dup(0), "rb", buffering=0)
    out = os.fdopen(os.dup(1), "wb")
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    local = threading.local()
    sys.stdout = _PerCall(sys.stdout, local)
    sys.stderr = _PerCall(sys.stderr, local)
    handler = argv[0] if argv else ""
    if os.environ.pop("SHOAL_SPARE", None) is not None:
        handler = _become(inp, out)
    w = Worker(handler, out, local)
    if os.environ.get("SHOAL_CODE_DIR"):
        sys.path.insert(0, os.environ["SHOAL_CODE_DIR"])
    why = w.load()
    w.send({"error": why} if why else {"ready": True})
    if why:
        os._exit(1)
    pool = _Pool(w.call)
    while (head := _read(inp, HEADER.size)) is not None:
        mlen, plen = HEADER.unpack(head)
        if mlen > MAX_META or plen > MAX_PAYLOAD:
            break
        meta, payload = _read(inp, mlen), _read(inp, plen)
        if meta is None or payload is None:
            break
        cid = int(json.loads(meta)["id"])
        try:
            pool.submit(cid, payload)
        except RuntimeError as e:  # the process limit
            w.send({"id": cid, "code": "FUNCTION_ERROR", "message": f"cannot start a call: {e}"})
    # The agent is gone or closed us: no call thread may keep us, and no
    # command we started outlives us (what left our group, the sweep finds).
    os.killpg(os.getpgrp(), signal.SIGKILL)
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
