"""Entry point: run the Typer app and turn ShoalError into one line + exit code.

Keep this module and every cli/*.py light at import time (a command's
start-up is part of every fan-out's latency), so heavy imports (grpc, ClusterShell,
cryptography, databases) happen inside the commands.

Typer reports its own usage errors (exit 2). Commands catch Ctrl-C
themselves, cancel their work and raise Interrupted (exit 130).
"""

from __future__ import annotations

import os
import sys
from types import FrameType


def main(argv: list[str] | None = None) -> int:
    import signal

    from shoal.errors import Interrupted

    # Ctrl-C before a command takes it over (while typer, rich... import): one
    # line and 130, never a traceback nor click's "Aborted!" and 1.
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _interrupted)
    try:
        code = _main(argv)
    except (KeyboardInterrupt, Interrupted):  # the latter: during _main's imports
        print("shoal: error: interrupted", file=sys.stderr)
        code = 130
    if argv is None and "grpc" in sys.modules:
        _exit_now(code)
    return code


def _interrupted(signum: int, frame: FrameType | None) -> None:
    from shoal.errors import Interrupted

    if _importing(frame):
        # An exception raised inside an import may surface as another one (a C
        # extension's init turns it into a TypeError); nothing is half-done yet
        os.write(2, b"shoal: error: interrupted\n")
        os._exit(130)
    raise Interrupted("interrupted")


def _importing(frame: FrameType | None) -> bool:
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def _exit_now(code: int) -> None:
    """End a command that talked gRPC without the interpreter's shutdown: grpc's
    teardown of its threads and channels is a visible share of a short command,
    and by now the work is done and the output written."""
    import logging

    logging.shutdown()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:
        code = _closed_pipe()
    os._exit(code)


def _main(argv: list[str] | None) -> int:
    from shoal.cli.app import build
    from shoal.errors import ShoalError

    app = build(sys.argv[1:] if argv is None else argv)
    try:
        app(args=argv, prog_name="shoal")
    except ShoalError as e:
        print(f"shoal: error: {e.message}", file=sys.stderr)
        return e.exit_code
    except SystemExit as e:
        if e.code == 1 and type(sys.stdout).__name__ == "PacifyFlushWrapper":
            # Typer met EPIPE first and made it exit 1, which to our users means
            # FAILED; it wraps stdout when it does, which is how we know
            return _closed_pipe()
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BrokenPipeError:
        return _closed_pipe()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        return _closed_pipe()
    return 0


def _closed_pipe() -> int:
    """The reader of our output went away (`| head`): stop quietly, as cat does."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush is quiet
    return 141  # 128 + SIGPIPE


if __name__ == "__main__":
    sys.exit(main())
