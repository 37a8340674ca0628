"""`shoal copy` and `shoal gather`: files through the tree, verified and atomic.

Exit status as for `shoal run`: 0 every node passed; else the worst of
4 UNREACHABLE/REFUSED > 3 TIMEOUT > 1 FAILED; 2 bad input (nothing
contacted); 5 certificates missing; 130 Ctrl-C (every node drops its
temporary file).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from shoal.cli.run import (
    ConnTimeout,
    Exclude,
    Hostfile,
    Insecure,
    Inv,
    Json,
    Nodes,
    Pick,
    _settings,
    _summary,
    node_sets,
    parse_size,
)
from shoal.errors import Interrupted


def _size(text: str) -> int:
    return parse_size(text, "--chunk-size")


def _progress(total: int, nodes: int) -> Any:
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        TextColumn("nodes {task.fields[done]}/{task.fields[nodes]}"),
        transient=True,
        disable=not sys.stderr.isatty(),
        console=None,
    )


def copy(
    source: Annotated[str, typer.Argument(help="Local file, or directory with -r.")],
    dest: Annotated[
        str, typer.Argument(help="Absolute path on the nodes (DIR/ or new name; %h: the node).")
    ],
    nodes: Nodes = None,
    exclude: Exclude = None,
    hostfile: Hostfile = None,
    pick: Pick = None,
    width: Annotated[
        int, typer.Option("-W", "-f", "--width", help="Tree width (1: a pipelined chain).")
    ] = 2,
    recursive: Annotated[bool, typer.Option("-r", "--recursive", help="Copy a directory.")] = False,
    preserve: Annotated[
        bool, typer.Option("-p", "--preserve", help="Keep mode, mtime (owner when root).")
    ] = False,
    delete: Annotated[
        bool,
        typer.Option(
            "--delete",
            help="With -r: make the destination directory a mirror of the source "
            "(files only the destination has are removed). Default: merge.",
        ),
    ] = False,
    chunk: Annotated[str, typer.Option("--chunk-size", help="Chunk size.")] = "512K",
    stall_timeout: Annotated[
        float,
        typer.Option(
            "--stall-timeout",
            help="Seconds a node may accept nothing before it is taken for dead and its "
            "subtree adopted by its parent.",
        ),
    ] = 10.0,
    bulk: Annotated[
        str | None,
        typer.Option(
            "--bulk",
            help="Data plane: aead (default: a TCP stream of AES-GCM frames, keys over "
            "mutual TLS), mac (PLAIN TEXT bytes with a tag against tampering: trusted "
            "networks only), grpc (in the control stream, slower).",
        ),
    ] = None,
    json_out: Json = False,
    inventory: Inv = None,
    insecure: Insecure = False,
    connect_timeout: ConnTimeout = None,
) -> None:
    """Broadcast a file or directory to every node: `shoal copy -w 'cn[1-64]' big.tar /root/`.

    The source is read once; every agent writes each chunk and forwards it to
    its children as soon as it has it. Each node lands the copy under a
    temporary name and puts it in place only after the end-to-end hash
    matched; a directory merges into an existing one (--delete: mirrors it).
    """
    from shoal.fanout.transfer import copy_job

    chunk_size = _size(chunk)
    settings = _settings(inventory, insecure, connect_timeout)
    ui: dict[str, Any] = {}  # the progress bar and its task, once shown

    def on_event(ev: Any, _: Any) -> None:
        if ui and ev.HasField("result"):
            done = len(job.report.order) - len(job.report.missing())
            ui["bar"].update(ui["task"], done=done)

    def on_progress(sent: int) -> None:
        if ui:
            ui["bar"].update(ui["task"], completed=sent)

    job = copy_job(
        node_sets(nodes, hostfile),
        source,
        dest,
        exclude=exclude,
        pick=pick,
        settings=settings,
        on_event=on_event,
        recursive=recursive,
        preserve=preserve,
        delete=delete,
        width=width,
        chunk_size=chunk_size,
        stall_timeout=stall_timeout,
        on_progress=on_progress,
        **({"bulk": bulk} if bulk is not None else {}),
    )
    n = len(job.report.order)
    with _progress(job.total or 0, n) as bar:
        ui["task"] = bar.add_task(Path(source).name, total=job.total, done=0, nodes=n)
        ui["bar"] = bar
        report = job.run_blocking()
    _report(report, json_out)


def gather(
    path: Annotated[str, typer.Argument(help="Absolute path on the nodes.")],
    dest: Annotated[
        str, typer.Argument(help="Local directory: files land as NAME.NODE (with %h: DEST/NAME).")
    ],
    nodes: Nodes = None,
    exclude: Exclude = None,
    hostfile: Hostfile = None,
    pick: Pick = None,
    recursive: Annotated[
        bool, typer.Option("-r", "--recursive", help="Fetch a directory.")
    ] = False,
    preserve: Annotated[bool, typer.Option("-p", "--preserve", help="Keep mode, mtime.")] = False,
    fan_in: Annotated[int, typer.Option("--fan-in", help="Nodes fetched at once.")] = 8,
    json_out: Json = False,
    inventory: Inv = None,
    insecure: Insecure = False,
    connect_timeout: ConnTimeout = None,
) -> None:
    """Fetch a file or directory from every node into DEST/NAME.NODE (as clush --rcopy)."""
    from shoal.fanout.transfer import gather_job

    settings = _settings(inventory, insecure, connect_timeout)
    job = gather_job(
        node_sets(nodes, hostfile),
        path,
        dest,
        exclude=exclude,
        pick=pick,
        settings=settings,
        recursive=recursive,
        preserve=preserve,
        fan_in=fan_in,
    )
    _report(job.run_blocking(), json_out)


def _report(report: Any, json_out: bool) -> None:
    if report.interrupted:
        raise Interrupted(f"interrupted: {len(report.missing())} node(s) unfinished, nothing kept")
    if json_out:
        report.write_json(sys.stdout)
    else:
        from shoal.cli.output import say

        for n in report.order:
            say(report.nodes[n])  # each failed node with its reason, as run and ping say it
        _summary(report)
    code = report.exit_code()
    if code:
        raise typer.Exit(code)
