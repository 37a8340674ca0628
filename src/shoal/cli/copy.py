"""`shoal copy` and `shoal gather`: files through the tree, verified and atomic.

Exit status as for `shoal run`: 0 every node passed; else the worst of
4 UNREACHABLE/REFUSED > 3 TIMEOUT > 1 FAILED; 2 bad input (nothing
contacted); 5 certificates missing; 130 Ctrl-C (every node drops its
temporary file).
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from shoal.cli.run import ConnTimeout, Exclude, Insecure, Inv, Json, Nodes, _settings, _summary
from shoal.errors import Interrupted, UsageError


def _size(text: str) -> int:
    units = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
    t = text.strip().lower().removesuffix("b").removesuffix("i")
    num, unit = (t[:-1], t[-1]) if t and t[-1] in units else (t, "")
    try:
        return int(float(num) * units[unit])
    except ValueError as e:
        raise UsageError(f"bad size {text!r} (e.g. 512K, 4M)") from e


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
    dest: Annotated[str, typer.Argument(help="Absolute path on the nodes (DIR/ or new name).")],
    nodes: Nodes,
    exclude: Exclude = None,
    width: Annotated[
        int, typer.Option("-W", "--width", help="Tree width (1: a pipelined chain).")
    ] = 2,
    recursive: Annotated[bool, typer.Option("-r", "--recursive", help="Copy a directory.")] = False,
    preserve: Annotated[
        bool, typer.Option("-p", "--preserve", help="Keep mode, mtime (owner when root).")
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
    json_out: Json = False,
    inventory: Inv = None,
    insecure: Insecure = False,
    connect_timeout: ConnTimeout = None,
) -> None:
    """Broadcast a file or directory to every node: `shoal copy -w cn[1-64] big.tar /root/`.

    The source is read once; every agent writes each chunk and forwards it to
    its children as soon as it has it. Each node lands the copy under a
    temporary name and renames it only after the end-to-end hash matched.
    """
    import asyncio
    import signal

    from shoal.agent.source import open_source
    from shoal.fanout.client import client_credentials, client_signer, resolve
    from shoal.fanout.copy import broadcast
    from shoal.fanout.report import Report

    if width < 1:
        raise UsageError("-W/--width must be at least 1")
    if stall_timeout <= 0:
        raise UsageError("--stall-timeout must be positive")
    if not dest.startswith("/"):
        raise UsageError(f"destination {dest!r} must be an absolute path on the nodes")
    src = open_source(source, recursive=recursive, preserve=preserve, chunk_size=_size(chunk))
    settings = _settings(inventory, insecure, connect_timeout)
    targets = resolve(nodes, exclude or [], settings)
    creds = client_credentials(settings)
    signer = client_signer(settings)
    report = Report(targets.nodes, 0)
    total = src.meta.size if src.meta.size >= 0 else None

    async def main() -> bool:
        me = asyncio.current_task()
        assert me is not None
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, me.cancel)
        with _progress(total or 0, len(targets.nodes)) as bar:
            job = bar.add_task(src.meta.name, total=total, done=0, nodes=len(targets.nodes))

            def on_event(ev: Any) -> None:
                if report.add(ev) is not None and ev.HasField("result"):
                    bar.update(job, done=len(targets.nodes) - len(report.missing()))

            try:
                await broadcast(
                    src,
                    dest,
                    targets,
                    width=width,
                    credentials=creds,
                    connect_timeout=settings.connect_timeout,
                    on_event=on_event,
                    on_progress=lambda n: bar.update(job, completed=n),
                    stall_timeout=stall_timeout,
                    signer=signer,
                    keepalive=settings.keepalive,
                )
            except asyncio.CancelledError:
                return True
            finally:
                loop.remove_signal_handler(signal.SIGINT)
        return False

    interrupted = asyncio.run(main())
    _report(report, interrupted, json_out)


def gather(
    path: Annotated[str, typer.Argument(help="Absolute path on the nodes.")],
    dest: Annotated[str, typer.Argument(help="Local directory: files land as NAME.NODE.")],
    nodes: Nodes,
    exclude: Exclude = None,
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
    import asyncio
    import signal

    from shoal.agent.relay import Channels, result_event
    from shoal.core.wire import pb
    from shoal.fanout.client import client_credentials, client_signer, resolve
    from shoal.fanout.gather import Gathered, check_dest
    from shoal.fanout.gather import gather as fetch_all
    from shoal.fanout.report import Report

    if fan_in < 1:
        raise UsageError("--fan-in must be at least 1")
    if not path.startswith("/"):
        raise UsageError(f"{path!r} must be an absolute path on the nodes")
    out = check_dest(dest)
    settings = _settings(inventory, insecure, connect_timeout)
    targets = resolve(nodes, exclude or [], settings)
    creds = client_credentials(settings)
    signer = client_signer(settings)
    report = Report(targets.nodes, 0)

    async def on_result(g: Gathered) -> None:
        report.add(result_event(g.node, g.state, g.reason, g.start_ns))

    async def main() -> bool:
        me = asyncio.current_task()
        assert me is not None
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, me.cancel)
        chans = Channels(creds, settings.keepalive)
        trees = [pb.Subtree(name=n, address=targets.addresses[n]) for n in targets.nodes]
        try:
            await fetch_all(
                trees,
                path,
                out,
                chans.get,
                recursive=recursive,
                preserve=preserve,
                fan_in=fan_in,
                connect_timeout=settings.connect_timeout,
                on_result=on_result,
                signer=signer,
            )
        except asyncio.CancelledError:
            return True
        finally:
            loop.remove_signal_handler(signal.SIGINT)
            await chans.close()
        return False

    interrupted = asyncio.run(main())
    _report(report, interrupted, json_out)


def _report(report: Any, interrupted: bool, json_out: bool) -> None:
    if interrupted:
        raise Interrupted(f"interrupted: {len(report.missing())} node(s) unfinished, nothing kept")
    report.finish("no result received")
    if json_out:
        report.write_json(sys.stdout)
    else:
        for n in report.order:
            r = report.nodes[n]
            if r.state != "PASS":
                print(f"{n}: {r.state}: {r.reason}", file=sys.stderr)
        _summary(report)
    code = report.exit_code()
    if code:
        raise typer.Exit(code)
