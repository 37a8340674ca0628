"""What `shoal run` shows as results come back, and where (clush's habits).

Streaming (the default): lines as they arrive, prefixed `node: ` (-N: not),
each failed node's reason on stderr. -l/-b: stdout is gathered and printed
at the end, stderr lines pass on as they come (--merge: into the blocks).
--outdir/--errdir: each node's stdout/stderr in DIR/NODE as it arrives, as
pssh's. -v: every node's result on stderr, PASS included.
"""

from __future__ import annotations

import difflib
import sys
from pathlib import Path
from typing import IO, Any

from shoal.errors import UsageError
from shoal.fanout.report import LineStreamer, Report


def say(r: Any, verbose: bool = False, err: Any = None) -> None:
    """A node's result on stderr (or err) as it arrives: failures always (as
    clush and pdsh say them), the others with -v."""
    if r.state is None or (r.ok and not verbose):
        return
    why = f": {r.reason}" if r.reason else (": no reason given" if not r.ok else "")
    took = f" ({r.wall_s:.2f}s)" if r.ok else ""
    w = err or sys.stderr.buffer
    w.write(f"{r.name}: {r.state}{why}{took}\n".encode())
    w.flush()


class Printer:
    def __init__(
        self,
        *,
        gather: bool,
        merge: bool = False,
        json_out: bool = False,
        labels: bool = True,
        verbose: bool = False,
        outdir: Path | None = None,
        errdir: Path | None = None,
        total: int = 0,
    ) -> None:
        self.gather = gather
        self.verbose = verbose
        # gathering, nothing goes to stdout before the end: a progress line may
        self.waiting = Waiting(total, gather and sys.stderr.isatty())
        quiet = json_out or merge  # those carry stderr themselves
        err: Any = self.waiting if gather else None
        self.lines = None if quiet else LineStreamer(err=err, labels=labels)
        self.dirs = {1: _made(outdir), 2: _made(errdir)}
        self.files: dict[tuple[str, int], IO[bytes]] = {}

    def on_event(self, ev: Any, r: Any) -> None:
        if ev.HasField("output"):
            out = ev.output
            if self.lines is not None and (not self.gather or out.stream == out.STDERR):
                self.lines.feed(ev.node, out.stream, out.data)
            self._to_file(ev.node, 1 if out.stream == out.STDOUT else 2, out.data)
        elif ev.HasField("result"):
            if self.lines is not None:
                self.lines.flush_node(ev.node)
            if not self.gather or self.verbose:
                say(r, self.verbose, self.waiting if self.gather else None)
            self.waiting.result()

    def _to_file(self, node: str, stream: int, data: bytes) -> None:
        d = self.dirs[stream]
        if d is None:
            return
        f = self.files.get((node, stream))
        if f is None:
            f = self.files[(node, stream)] = (d / node).open("wb")
        f.write(data)

    def close(self) -> None:
        self.waiting.close()
        if self.lines is not None:
            self.lines.flush()
        for f in self.files.values():
            f.close()


class Waiting:
    """When results keep us waiting more than DELAY seconds and stderr is a
    terminal: a transient progress line there (nodes answered of all). Only
    where nothing else writes to the terminal meanwhile (gathering modes)."""

    DELAY = 2.0

    def __init__(self, total: int, enabled: bool) -> None:
        import threading

        self.total, self.done = total, 0
        self._bar: Any = None
        self._task: Any = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(self.DELAY, self._show) if enabled else None
        if self._timer is not None:
            self._timer.daemon = True
            self._timer.start()

    def _show(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        with self._lock:
            if self._timer is None:
                return
            self._bar = Progress(
                "waiting for nodes", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                console=Console(stderr=True), transient=True,
            )  # fmt: skip
            self._task = self._bar.add_task("", total=self.total, completed=self.done)
            self._bar.start()

    def write(self, data: bytes) -> int:
        """stderr for lines that come meanwhile: above the bar while it shows."""
        with self._lock:
            if self._bar is None:
                sys.stderr.buffer.write(data)
            else:
                text = data.decode(errors="replace")
                self._bar.console.print(text, end="", markup=False, highlight=False)
        return len(data)

    def flush(self) -> None:
        sys.stderr.flush()

    def result(self) -> None:
        with self._lock:
            self.done += 1
            if self._bar is not None:
                self._bar.update(self._task, completed=self.done)

    def close(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._bar is not None:
                self._bar.stop()
                self._bar = None


def _made(d: Path | None) -> Path | None:
    if d is None:
        return None
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create {d}: {e.strerror}") from e
    if not d.is_dir():
        raise UsageError(f"{d} is not a directory")
    return d


def render_diff(report: Report, w: IO[bytes]) -> None:
    """--diff: the output most nodes gave, then a unified diff of every other
    output against it (as clush --diff), nodes folded."""
    from shoal.core.nodeset import fold

    groups: dict[bytes, list[str]] = {}
    for n in report.order:
        r = report.nodes[n]
        if r.state is not None:
            groups.setdefault(bytes(r.out), []).append(n)
    if not groups:
        return
    ref, ref_nodes = max(groups.items(), key=lambda kv: len(kv[1]))
    for body, names in groups.items():
        if body == ref:
            continue
        diff = difflib.diff_bytes(
            difflib.unified_diff,
            ref.splitlines(keepends=True),
            body.splitlines(keepends=True),
            fold(ref_nodes).encode(),
            fold(names).encode(),
        )
        for line in diff:
            w.write(line if line.endswith(b"\n") else line + b"\n")


def max_status(report: Report) -> int:
    """-S: the largest exit status of the commands; a node where none ran
    (unreachable, refused) counts 255, as ssh reports it."""
    worst = 0
    for r in report.nodes.values():
        never = r.state in ("UNREACHABLE", "REFUSED") or r.state is None
        worst = max(worst, 255 if never else r.exit_code & 0xFF)
    return worst


def read_hostfile(path: Path) -> list[str]:
    """clush --hostfile: node names or sets, one per line; # comments."""
    try:
        text = path.read_text()
    except OSError as e:
        raise UsageError(f"--hostfile {path}: {e.strerror}") from e
    return [ln.split("#", 1)[0].strip() for ln in text.splitlines() if ln.split("#", 1)[0].strip()]


def stdin_bytes(limit: int) -> bytes:
    """What is piped into `shoal run` (a pipe or a file, never a terminal, a
    socket or /dev/null), for every node; a UsageError past limit bytes."""
    import os
    import stat

    try:
        mode = os.fstat(sys.stdin.fileno()).st_mode
    except (OSError, ValueError, AttributeError):
        return b""
    if not (stat.S_ISFIFO(mode) or stat.S_ISREG(mode)):
        return b""
    data = sys.stdin.buffer.read(limit + 1)
    if len(data) > limit:
        raise UsageError(
            f"stdin holds more than {limit >> 20} MiB: copy it to the nodes (shoal copy)"
            " or pass --nostdin"
        )
    return data
