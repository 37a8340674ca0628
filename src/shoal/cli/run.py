"""`shoal run`, `shoal ping`, `shoal facts`: fan-out through the agent tree.

Exit status (every fan-out command): 0 when every node passed; otherwise the
worst state that occurred: 4 UNREACHABLE/REFUSED > 3 TIMEOUT > 1 FAILED.
2: bad node set or usage (nothing contacted); 5: certificates missing;
130: interrupted (Ctrl-C cancels the work on every node).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from shoal.errors import Interrupted, UsageError

if TYPE_CHECKING:
    from shoal.core.config import Settings
    from shoal.fanout.report import Report

Nodes = Annotated[
    list[str],
    typer.Option("-w", "--nodes", help="Node set (ClusterShell syntax, @group); repeatable."),
]
Exclude = Annotated[
    list[str] | None, typer.Option("-x", "--exclude", help="Node set to leave out; repeatable.")
]
Width = Annotated[
    int | None, typer.Option("-W", "--width", help="Tree width [default: settings.width].")
]
Inv = Annotated[Path | None, typer.Option("--inventory", help="Inventory TOML file.")]
Insecure = Annotated[bool, typer.Option("--insecure", help="Plain text, no TLS.")]
ConnTimeout = Annotated[
    float | None, typer.Option("--connect-timeout", help="Seconds per hop to connect [5].")
]
Lines = Annotated[bool, typer.Option("-l", "--lines", help="Gather; print per node in order.")]
Json = Annotated[bool, typer.Option("--json", help="Gather; print one JSON document.")]


def _quiet_grpc() -> None:
    """Failure reasons reach the report; grpc's own handshake chatter would only
    repeat them on stderr. Must run before grpc is imported."""
    import os

    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")


def parse_size(text: str, what: str) -> int:
    """ "512K", "4M", "180G", "1.5T" or bytes -> bytes; a UsageError names `what`."""
    units = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    t = text.strip().lower().removesuffix("b").removesuffix("i")
    num, unit = (t[:-1], t[-1]) if t and t[-1] in units else (t, "")
    try:
        value = int(float(num) * units[unit])
    except ValueError:
        value = -1
    if value <= 0:
        raise UsageError(f"{what} {text!r}: expected a size like 512K, 4M or 180G")
    return value


def _settings(inventory: Path | None, insecure: bool, connect_timeout: float | None) -> Settings:
    from shoal.core.config import Settings

    return Settings.load(
        inventory=inventory, insecure=insecure or None, connect_timeout=connect_timeout
    )


def _finish(report: Report) -> None:
    if report.interrupted:
        raise Interrupted(f"interrupted: cancelled on {len(report.missing())} node(s)")
    code = report.exit_code()
    if code:
        raise typer.Exit(code)


def say_failure(r: Any) -> None:
    """A node's failure with its reason on stderr as it arrives, as clush and
    pdsh say it (``node3: FAILED: exit status 2``)."""
    if r.state is not None and not r.ok:
        print(f"{r.name}: {r.state}: {r.reason or 'no reason given'}", file=sys.stderr, flush=True)


def _summary(report: Report) -> None:
    for line in report.summary_lines():
        print(line)
    sys.stdout.flush()


def run(
    command: Annotated[list[str], typer.Argument(help="The command, after --.")],
    nodes: Nodes,
    exclude: Exclude = None,
    width: Width = None,
    timeout: Annotated[
        float, typer.Option("-t", "--timeout", help="Kill the command after S seconds (0: never).")
    ] = 0.0,
    lines: Lines = False,
    blocks: Annotated[
        bool, typer.Option("-b", "--blocks", help="Gather; identical outputs once (dshbak -c).")
    ] = False,
    json_out: Json = False,
    env: Annotated[list[str] | None, typer.Option("--env", help="K=V added; repeatable.")] = None,
    cwd: Annotated[str, typer.Option("--cwd", help="Working directory on the nodes.")] = "",
    cpus: Annotated[str, typer.Option("--cpus", help="Sandbox: CPUs (cpuset list, 0-3,8).")] = "",
    mems: Annotated[str, typer.Option("--mems", help="Sandbox: memory nodes (list).")] = "",
    mem: Annotated[
        str, typer.Option("--mem", help="Sandbox: memory limit (e.g. 180G), swap off.")
    ] = "",
    cpu_quota: Annotated[
        float, typer.Option("--cpu-quota", help="Sandbox: CPU time in cores (1.5).")
    ] = 0.0,
    pids: Annotated[int, typer.Option("--pids", help="Sandbox: most processes at once.")] = 0,
    scratch: Annotated[
        str,
        typer.Option(
            "--scratch",
            help="Sandbox: a fresh private directory under DIR ($TMPDIR, $SHOAL_SCRATCH),"
            " removed when the command ends.",
            metavar="DIR",
        ),
    ] = "",
    merge: Annotated[
        bool, typer.Option("--merge", help="With -l/-b: stderr in the blocks, after stdout.")
    ] = False,
    acct: Annotated[
        bool,
        typer.Option("--acct", help="With -l/-b: wall time, CPU time and peak memory per node."),
    ] = False,
    inventory: Inv = None,
    insecure: Insecure = False,
    connect_timeout: ConnTimeout = None,
) -> None:
    """Run a command on every node: `shoal run -w cn[1-8] -- uname -r`.

    By default lines stream as they arrive, prefixed `node: `, and nothing is
    kept. -l, -b and --json gather output: at most output_cap bytes (1 MiB by
    default, SHOAL_OUTPUT_CAP) per node and stream are kept; the rest is
    counted and noted as dropped. The summary ends every command.
    Exit: 0 all passed, 1 FAILED, 3 TIMEOUT, 4 UNREACHABLE/REFUSED (worst wins),
    2 bad node set, 5 no certificate, 130 Ctrl-C.
    """
    _quiet_grpc()
    from shoal.fanout.api import Resources, run_job
    from shoal.fanout.report import LineStreamer

    if sum((lines, blocks, json_out)) > 1:
        raise UsageError("-l, -b and --json exclude each other")
    if acct and not (lines or blocks):
        raise UsageError("--acct goes with -l or -b (--json always carries the accounting)")
    envd: dict[str, str] = {}
    for kv in env or []:
        k, sep, v = kv.partition("=")
        if not sep or not k:
            raise UsageError(f"--env {kv!r}: expected K=V")
        envd[k] = v
    if not command:
        raise UsageError("no command given (shoal run -w NODES -- CMD…)")
    settings = _settings(inventory, insecure, connect_timeout)
    gather = lines or blocks or json_out
    if merge and not (lines or blocks):
        raise UsageError("--merge goes with -l or -b")
    # -l/-b gather stdout; stderr lines go to stderr as they come, as clush's
    streamer = None if json_out or merge else LineStreamer()
    memory = parse_size(mem, "--mem") if mem else 0
    resources = Resources(cpus, mems, memory, cpu_quota, pids, scratch)

    def on_event(ev: Any, r: Any) -> None:
        if streamer is not None:
            if ev.HasField("output"):
                if not gather or ev.output.stream == ev.output.STDERR:
                    streamer.feed(ev.node, ev.output.stream, ev.output.data)
            elif ev.HasField("result"):
                streamer.flush_node(ev.node)
                if not gather:
                    say_failure(r)

    job = run_job(
        nodes,
        " ".join(command),
        timeout=timeout,
        env=envd,
        cwd=cwd,
        resources=resources,
        exclude=exclude,
        width=width,
        settings=settings,
        output_cap=settings.output_cap if gather else 0,
        on_event=on_event,
    )
    report = job.run_blocking()
    if streamer is not None:
        streamer.flush()
    if lines:
        report.render_lines(sys.stdout.buffer, acct=acct, merged=merge)
    elif blocks:
        report.render_blocks(sys.stdout.buffer, acct=acct, merged=merge)
    sys.stdout.flush()
    if json_out:
        report.write_json(sys.stdout)
    else:
        _summary(report)
    _finish(report)


def ping(
    nodes: Nodes,
    exclude: Exclude = None,
    width: Width = None,
    lines: Lines = False,
    json_out: Json = False,
    inventory: Inv = None,
    insecure: Insecure = False,
    connect_timeout: ConnTimeout = None,
) -> None:
    """Check that every node's agent answers; -l/--json show round-trip ms."""
    _quiet_grpc()
    from shoal.fanout.api import PING, tree_job

    settings = _settings(inventory, insecure, connect_timeout)
    quiet = lines or json_out  # those say each node's reason themselves

    def on_event(ev: Any, r: Any) -> None:
        if not quiet and ev.HasField("result"):
            say_failure(r)

    job = tree_job(
        PING, nodes, exclude=exclude, width=width, settings=settings, output_cap=0,
        on_event=on_event,
    )  # fmt: skip
    report = job.run_blocking()
    if json_out:
        report.write_json(sys.stdout)
    else:
        if lines:
            for n in report.order:
                r = report.nodes[n]
                rtt = f" {r.rtt_ms:.1f} ms" if r.state == "PASS" and r.rtt_ms is not None else ""
                why = f" ({r.reason})" if r.state != "PASS" and r.reason else ""
                print(f"{n} [{r.state}]{rtt}{why}")
        _summary(report)
    _finish(report)


def facts(
    nodes: Nodes,
    exclude: Exclude = None,
    width: Width = None,
    json_out: Json = False,
    cpus: Annotated[
        bool, typer.Option("--cpus", help="Also each node's CPUs: core, package, NUMA, L3.")
    ] = False,
    inventory: Inv = None,
    insecure: Insecure = False,
    connect_timeout: ConnTimeout = None,
) -> None:
    """Hardware and OS facts of every node, as a table (or --json, topology included)."""
    _quiet_grpc()
    import json

    from shoal.agent.facts import plain
    from shoal.fanout.api import FACTS, tree_job
    from shoal.fanout.report import facts_tables

    settings = _settings(inventory, insecure, connect_timeout)
    job = tree_job(FACTS, nodes, exclude=exclude, width=width, settings=settings, output_cap=0)
    report = job.run_blocking()
    if json_out:
        doc = report.to_json()
        for n, d in doc["nodes"].items():
            for k in ("stdout", "stderr", "stdout_dropped", "stderr_dropped"):
                d.pop(k)
            f = report.nodes[n].facts
            d["facts"] = plain(f) if f is not None else None
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        from rich.console import Console

        # piped: wide enough that nothing is cut for scripts and logs
        console = Console(width=None if sys.stdout.isatty() else 240)
        for t in facts_tables(report, cpus):
            console.print(t)
        _summary(report)
    _finish(report)
