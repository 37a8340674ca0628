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
    list[str] | None,
    typer.Option("-w", "--nodes", help="Node set (ClusterShell syntax, @group); repeatable."),
]
Hostfile = Annotated[
    Path | None,
    typer.Option("--hostfile", help="Nodes (names or sets) from a file, one per line, as clush."),
]
Pick = Annotated[int | None, typer.Option("--pick", help="N random nodes of the set.")]
Exclude = Annotated[
    list[str] | None, typer.Option("-x", "--exclude", help="Node set to leave out; repeatable.")
]
Width = Annotated[
    int | None,
    typer.Option("-W", "-f", "--width", help="Tree width (clush's fan-out) [default: settings]."),
]
Inv = Annotated[Path | None, typer.Option("--inventory", help="Inventory TOML file.")]
Insecure = Annotated[bool, typer.Option("--insecure", help="Plain text, no TLS.")]
ConnTimeout = Annotated[
    float | None, typer.Option("--connect-timeout", help="Seconds per hop to connect [5].")
]
Lines = Annotated[
    bool, typer.Option("-l", "-L", "--lines", help="Gather; print per node in node-list order.")
]
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


def node_sets(nodes: list[str] | None, hostfile: Path | None) -> list[str]:
    """-w (repeatable) and --hostfile together; one of them is needed."""
    from shoal.cli.output import read_hostfile

    sets = list(nodes or []) + (read_hostfile(hostfile) if hostfile else [])
    if not sets:
        raise UsageError("no nodes: give -w NODESET or --hostfile FILE")
    return sets


def _settings(inventory: Path | None, insecure: bool, connect_timeout: float | None) -> Settings:
    from shoal.core.config import Settings

    return Settings.load(
        inventory=inventory, insecure=insecure or None, connect_timeout=connect_timeout
    )


def _finish(report: Report, code: int | None = None) -> None:
    """Exit with the report's status, or code (-S) when given."""
    if report.interrupted:
        raise Interrupted(f"interrupted: cancelled on {len(report.missing())} node(s)")
    code = report.exit_code() if code is None else code
    if code:
        raise typer.Exit(code)


def _summary(report: Report) -> None:
    for line in report.summary_lines():
        print(line)
    sys.stdout.flush()


def run(
    command: Annotated[list[str], typer.Argument(help="The command, after --.")],
    nodes: Nodes = None,
    exclude: Exclude = None,
    hostfile: Hostfile = None,
    pick: Pick = None,
    width: Width = None,
    timeout: Annotated[
        float,
        typer.Option("-t", "-u", "--timeout", help="Kill the command after S seconds (0: never)."),
    ] = 0.0,
    lines: Lines = False,
    blocks: Annotated[
        bool, typer.Option("-b", "--blocks", help="Gather; identical outputs once (dshbak -c).")
    ] = False,
    json_out: Json = False,
    diff: Annotated[
        bool, typer.Option("--diff", help="Gather; unified diff of outputs against the commonest.")
    ] = False,
    no_labels: Annotated[
        bool, typer.Option("-N", help="No node prefix on lines, no headers on -l/-b blocks.")
    ] = False,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="No summary lines.")] = False,
    verbose: Annotated[
        bool, typer.Option("-v", "--verbose", help="Every node's result on stderr, PASS too.")
    ] = False,
    max_status: Annotated[
        bool, typer.Option("-S", help="Exit with the largest exit status of the commands.")
    ] = False,
    outdir: Annotated[
        Path | None, typer.Option("--outdir", help="Each node's stdout into DIR/NODE.")
    ] = None,
    errdir: Annotated[
        Path | None, typer.Option("--errdir", help="Each node's stderr into DIR/NODE.")
    ] = None,
    nostdin: Annotated[
        bool, typer.Option("--nostdin", help="Do not give piped stdin to the commands.")
    ] = False,
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
    """Run a command on every node: `shoal run -w 'cn[1-8]' -- uname -r`.

    By default lines stream as they arrive, prefixed `node: `, and nothing is
    kept. -l, -b, --diff and --json gather output: at most output_cap bytes
    (1 MiB by default, SHOAL_OUTPUT_CAP) per node and stream are kept; the
    rest is counted and noted as dropped. %h in the command is the node's
    name; piped stdin goes to every node. The summary ends every command.
    Exit: 0 all passed, 1 FAILED, 3 TIMEOUT, 4 UNREACHABLE/REFUSED (worst wins),
    2 bad node set, 5 no certificate, 130 Ctrl-C; -S: the largest exit status.
    """
    _quiet_grpc()
    from shoal.cli.output import Printer, render_diff, stdin_bytes
    from shoal.cli.output import max_status as largest
    from shoal.fanout.api import MAX_STDIN, Resources, run_job

    if sum((lines, blocks, json_out, diff)) > 1:
        raise UsageError("-l, -b, --diff and --json exclude each other")
    if acct and not (lines or blocks):
        raise UsageError("--acct goes with -l or -b (--json always carries the accounting)")
    if merge and not (lines or blocks):
        raise UsageError("--merge goes with -l or -b")
    envd: dict[str, str] = {}
    for kv in env or []:
        k, sep, v = kv.partition("=")
        if not sep or not k:
            raise UsageError(f"--env {kv!r}: expected K=V")
        envd[k] = v
    if not command:
        raise UsageError("no command given (shoal run -w NODES -- CMD…)")
    sets = node_sets(nodes, hostfile)
    settings = _settings(inventory, insecure, connect_timeout)
    gather = lines or blocks or json_out or diff
    printer = Printer(
        gather=gather, merge=merge, json_out=json_out, labels=not no_labels, verbose=verbose,
        outdir=outdir, errdir=errdir,
    )  # fmt: skip
    memory = parse_size(mem, "--mem") if mem else 0
    job = run_job(
        sets,
        " ".join(command),
        timeout=timeout,
        env=envd,
        cwd=cwd,
        resources=Resources(cpus, mems, memory, cpu_quota, pids, scratch),
        stdin=b"" if nostdin else stdin_bytes(MAX_STDIN),
        exclude=exclude,
        pick=pick,
        width=width,
        settings=settings,
        output_cap=settings.output_cap if gather else 0,
        on_event=printer.on_event,
    )
    printer.waiting.total = len(job.report.order)
    try:
        report = job.run_blocking()
    finally:
        printer.close()
    out = sys.stdout.buffer
    if lines:
        report.render_lines(out, acct=acct, merged=merge, labels=not no_labels)
    elif blocks:
        report.render_blocks(out, acct=acct, merged=merge, labels=not no_labels)
    elif diff:
        render_diff(report, out)
    sys.stdout.flush()
    if json_out:
        report.write_json(sys.stdout)
    elif not quiet:
        _summary(report)
    _finish(report, largest(report) if max_status else None)


def ping(
    nodes: Nodes = None,
    exclude: Exclude = None,
    hostfile: Hostfile = None,
    pick: Pick = None,
    width: Width = None,
    lines: Lines = False,
    json_out: Json = False,
    inventory: Inv = None,
    insecure: Insecure = False,
    connect_timeout: ConnTimeout = None,
) -> None:
    """Check that every node's agent answers; -l/--json show round-trip ms."""
    _quiet_grpc()
    from shoal.cli.output import Waiting, say
    from shoal.fanout.api import PING, tree_job

    sets = node_sets(nodes, hostfile)
    settings = _settings(inventory, insecure, connect_timeout)
    quiet = lines or json_out  # those say each node's reason themselves
    waiting = Waiting(0, sys.stderr.isatty())

    def on_event(ev: Any, r: Any) -> None:
        if ev.HasField("result"):
            if not quiet:
                say(r, err=waiting)
            waiting.result()

    job = tree_job(
        PING, sets, exclude=exclude, pick=pick, width=width, settings=settings, output_cap=0,
        on_event=on_event,
    )  # fmt: skip
    waiting.total = len(job.report.order)
    try:
        report = job.run_blocking()
    finally:
        waiting.close()
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
    nodes: Nodes = None,
    exclude: Exclude = None,
    hostfile: Hostfile = None,
    pick: Pick = None,
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
    from shoal.cli.output import say
    from shoal.fanout.api import FACTS, tree_job
    from shoal.fanout.report import facts_tables

    settings = _settings(inventory, insecure, connect_timeout)

    def on_event(ev: Any, r: Any) -> None:
        if not json_out and ev.HasField("result"):
            say(r)

    job = tree_job(
        FACTS, node_sets(nodes, hostfile), exclude=exclude, pick=pick, width=width,
        settings=settings, output_cap=0, on_event=on_event,
    )  # fmt: skip
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

        # a terminal's own width; piped, 80 columns (cells wrap; --json for scripts)
        console = Console(width=None if sys.stdout.isatty() else 80)
        for t in facts_tables(report, cpus):
            console.print(t)
        _summary(report)
    _finish(report)
