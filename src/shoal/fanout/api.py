"""The fan-out library API: what `shoal run`, `ping`, `facts`, `copy` and
`gather` do, for any program (the CLI, the fleet's jobs, bench, faas).

    from shoal.fanout import run
    report = run("cn[1-8]", "uname -r")
    for node in report:
        print(node.name, node.state, node.stdout)

Each function takes node sets (ClusterShell syntax: a string or a list of
them) and options, and returns a Report: per node its state, exit status,
reason, output, timings (and facts, or the gathered path). The ``*_async``
forms are coroutines; cancelling one stops the work on every node. The plain
forms run an event loop of their own, where Ctrl-C stops the work everywhere
and returns the partial report with ``interrupted`` set. Bad node sets,
options or certificates raise a ShoalError before anything is contacted.
"""

from __future__ import annotations

import asyncio
import random
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypedDict, Unpack, cast

from shoal.core.config import Settings
from shoal.core.wire import pb
from shoal.errors import UsageError
from shoal.fanout.client import Targets, client_credentials, client_signer, fan_out, resolve
from shoal.fanout.report import NodeResult, Report

NodeSets = str | Sequence[str]
OnEvent = Callable[[pb.TaskEvent, NodeResult], None]


@dataclass
class Job:
    """A fan-out checked and ready: its report fills in as ``work`` runs."""

    report: Report
    work: Callable[[], Awaitable[None]]
    total: int | None = None  # bytes to move, when known (copy's progress)

    async def run(self) -> Report:
        await self.work()
        return self.report

    def run_blocking(self) -> Report:
        """Run in an event loop of its own; Ctrl-C (in the main thread) cancels
        the work on every node and returns what came back, ``interrupted`` set."""

        # SIGINT stays blocked while the loop is built and torn down: a Ctrl-C
        # there would raise inside asyncio's own code; it waits for the handler
        catch = threading.current_thread() is threading.main_thread()
        sigint = {signal.SIGINT}

        async def main() -> Report:
            me = asyncio.current_task()
            assert me is not None
            loop = asyncio.get_running_loop()
            before = signal.getsignal(signal.SIGINT)
            if catch:
                loop.add_signal_handler(signal.SIGINT, me.cancel)
                signal.pthread_sigmask(signal.SIG_UNBLOCK, sigint)
            try:
                await self.work()
            except asyncio.CancelledError:
                self.report.interrupted = True
            finally:
                if catch:
                    signal.pthread_sigmask(signal.SIG_BLOCK, sigint)
                    loop.remove_signal_handler(signal.SIGINT)
                    signal.signal(signal.SIGINT, before)
            return self.report

        if not catch:
            return asyncio.run(main())
        signal.pthread_sigmask(signal.SIG_BLOCK, sigint)
        try:
            return asyncio.run(main())
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, sigint)


def _list(sets: NodeSets | None) -> list[str]:
    if sets is None:
        return []
    return [sets] if isinstance(sets, str) else list(sets)


MAX_STDIN = 1 << 20  # bytes of stdin a command may be given (it travels in the request)


def targets_of(
    nodes: NodeSets, exclude: NodeSets | None, settings: Settings, pick: int | None = None
) -> Targets:
    """The nodes, or ``pick`` of them at random (as clush --pick), in node-list order."""
    t = resolve(_list(nodes), _list(exclude), settings)
    if pick is not None:
        if pick < 1:
            raise UsageError("--pick takes a positive number of nodes")
        chosen = set(random.sample(t.nodes, min(pick, len(t.nodes))))
        t = Targets([n for n in t.nodes if n in chosen], t.addresses)
    return t


def recorder(report: Report, on_event: OnEvent | None) -> Callable[[pb.TaskEvent], None]:
    """What a fan-out calls per event: into the report, then to the caller."""

    def on(ev: pb.TaskEvent) -> None:
        r = report.add(ev)
        if r is not None and on_event is not None:
            on_event(ev, r)

    return on


def tree_job(
    task: pb.TaskRequest,
    nodes: NodeSets,
    *,
    exclude: NodeSets | None = None,
    width: int | None = None,
    settings: Settings | None = None,
    output_cap: int | None = None,
    on_event: OnEvent | None = None,
    pick: int | None = None,
) -> Job:
    """A job that sends ``task`` (exec, ping or facts) through the tree."""
    s = settings or Settings.load()
    targets = targets_of(nodes, exclude, s, pick)
    w = width if width is not None else s.width
    if w < 1:
        raise UsageError("the tree width must be at least 1")
    report = Report(targets.nodes, s.output_cap if output_cap is None else output_cap)
    creds = client_credentials(s)  # a missing certificate: TLSError now, not mid-run
    signer = client_signer(s)

    on = recorder(report, on_event)

    async def work() -> None:
        report.sent_ns = time.monotonic_ns()
        await fan_out(
            task,
            targets,
            width=w,
            credentials=creds,
            connect_timeout=s.connect_timeout,
            on_event=on,
            signer=signer,
            keepalive=s.keepalive,
        )
        report.finish("no result received")

    return Job(report, work)


@dataclass(frozen=True)
class Resources:
    """The sandbox a command runs in on each node (nothing asked: defaults)."""

    cpus: str = ""  # cpuset CPU list, e.g. "0-3,8"
    mems: str = ""  # memory nodes
    memory: int = 0  # bytes; swap off
    cpu_quota: float = 0.0  # cores
    pids: int = 0  # most processes at once
    scratch: str = ""  # a directory: the command gets a fresh private one under it

    def to_wire(self) -> pb.Resources:
        if self.memory < 0 or self.pids < 0 or not self.cpu_quota >= 0:
            raise UsageError("memory, cpu quota and pids limits must be positive")
        if self.scratch and not self.scratch.startswith("/"):
            raise UsageError(f"scratch {self.scratch!r}: must be an absolute path on the nodes")
        return pb.Resources(
            cpus=self.cpus, mems=self.mems, memory=self.memory, cpu_quota=self.cpu_quota,
            pids=self.pids, scratch=self.scratch,
        )  # fmt: skip


def exec_task(
    command: str,
    *,
    timeout: float = 0.0,
    env: dict[str, str] | None = None,
    cwd: str = "",
    resources: Resources | None = None,
    stdin: bytes = b"",
) -> pb.TaskRequest:
    if not command.strip():
        raise UsageError("no command given")
    if not timeout >= 0:
        raise UsageError(f"timeout {timeout!r}: must be 0 (none) or positive seconds")
    for k in env or {}:
        if not k or "=" in k or "\0" in k:
            raise UsageError(f"environment variable name {k!r} is not valid")
    if len(stdin) > MAX_STDIN:
        raise UsageError(
            f"stdin holds more than {MAX_STDIN >> 20} MiB: copy it to the nodes (shoal copy)"
        )
    return pb.TaskRequest(
        exec=pb.ExecTask(
            command=command,
            env=env or {},
            cwd=cwd,
            timeout=timeout,
            resources=(resources or Resources()).to_wire(),
            stdin=stdin,
        )
    )


class TreeOptions(TypedDict, total=False):
    exclude: NodeSets | None  # node sets to leave out
    width: int | None  # tree width; default: settings.width
    settings: Settings | None  # default: Settings.load()
    output_cap: int | None  # bytes kept per node and stream; default: settings.output_cap
    on_event: OnEvent | None  # called with (event, node result) as results stream in
    pick: int | None  # that many nodes of the set, at random


class RunOptions(TreeOptions, total=False):
    timeout: float  # seconds, then the command's whole sandbox is killed; 0: never
    env: dict[str, str] | None  # added to the command's clean environment
    cwd: str  # working directory on the nodes
    resources: Resources | None  # its sandbox: CPUs, memory, quota, processes, scratch
    stdin: bytes  # given to the command on every node, then EOF (at most MAX_STDIN)


def run_job(nodes: NodeSets, command: str, **opts: Unpack[RunOptions]) -> Job:
    task = exec_task(
        command,
        timeout=opts.pop("timeout", 0.0),
        env=opts.pop("env", None),
        cwd=opts.pop("cwd", ""),
        resources=opts.pop("resources", None),
        stdin=opts.pop("stdin", b""),
    )
    return tree_job(task, nodes, **cast(TreeOptions, opts))  # the run keys are popped


async def run_async(nodes: NodeSets, command: str, **opts: Unpack[RunOptions]) -> Report:
    """Run ``command`` through /bin/sh -c on every node, each in a sandbox of
    its own (``resources``), killed after ``timeout`` seconds (0: never), with
    ``env`` added to its clean environment, in ``cwd``."""
    return await run_job(nodes, command, **opts).run()


def run(nodes: NodeSets, command: str, **opts: Unpack[RunOptions]) -> Report:
    """Blocking form of run_async."""
    return run_job(nodes, command, **opts).run_blocking()


PING = pb.TaskRequest(ping=pb.PingTask())
FACTS = pb.TaskRequest(facts=pb.FactsTask())


async def ping_async(nodes: NodeSets, **opts: Unpack[TreeOptions]) -> Report:
    """Check that every node's agent answers (round trip in each node's rtt_ms)."""
    return await tree_job(PING, nodes, **opts).run()


def ping(nodes: NodeSets, **opts: Unpack[TreeOptions]) -> Report:
    """Blocking form of ping_async."""
    return tree_job(PING, nodes, **opts).run_blocking()


async def facts_async(nodes: NodeSets, **opts: Unpack[TreeOptions]) -> Report:
    """Hardware and OS facts of every node (in each node's ``facts``)."""
    return await tree_job(FACTS, nodes, **opts).run()


def facts(nodes: NodeSets, **opts: Unpack[TreeOptions]) -> Report:
    """Blocking form of facts_async."""
    return tree_job(FACTS, nodes, **opts).run_blocking()
