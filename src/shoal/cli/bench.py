"""`shoal bench`: plan a campaign on the nodes, extract phases from logs,
report. Parses, calls shoal.bench, prints."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from shoal.errors import Interrupted

if TYPE_CHECKING:
    from shoal.bench.report import Report

app = typer.Typer(
    rich_markup_mode=None,
    help="Benchmark campaigns in cpuset slots: plan, run, status, stop, parse logs, report, gc.",
    no_args_is_help=True,
)
Nodes = Annotated[
    str | None, typer.Option("-w", "--nodes", help="Node set instead of the campaign's.")
]
Plots = Annotated[bool, typer.Option(help="Write PNG plots.")]


@app.command("plan")
def plan(
    campaign: Annotated[Path, typer.Argument(help="The campaign file (TOML).")],
    nodes: Nodes = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Slots per host and every preflight check; nothing is started."""
    import json

    from shoal.bench.load import load_campaign
    from shoal.bench.preflight import preflight
    from shoal.bench.units import human
    from shoal.cli.tables import row, show, table

    c = load_campaign(campaign)
    result = preflight(c, nodes=nodes)
    if json_out:
        print(json.dumps(result.to_json(), indent=2))
    else:
        t = table("host", "layout", "slot", "CPUs", "cores", "threads", "mems", "memory")
        for p in result.plans:
            for s in p.slots:
                mem = human(s.memory) if s.memory else "no limit"
                row(t, p.host, p.layout, s.index, s.cpu_list, s.cores, s.threads,
                    s.mem_list or "-", mem)  # fmt: skip
        checks = table("host", "check", "", "detail")
        for k in result.checks:
            row(checks, k.host, k.name, "ok" if k.ok else "FAILED", k.detail)
        show(t, checks)
    for k in result.checks:
        if not k.ok:
            print(f"shoal: bench plan: {k.host}: {k.name}: {k.detail}", file=sys.stderr)
    if result.exit_code:
        raise typer.Exit(result.exit_code)


Out = Annotated[Path, typer.Option("--out", "-o", help="A new results directory.")]
Results = Annotated[Path, typer.Argument(help="The campaign's results directory.")]


@app.command("run")
def run(
    campaign: Annotated[Path, typer.Argument(help="The campaign file (TOML).")],
    nodes: Nodes = None,
    out: Out = Path("bench-results"),
    detach: Annotated[
        bool, typer.Option("--detach", "-d", help="Start it and return; see `bench status`.")
    ] = False,
    plots: Plots = True,
) -> None:
    """Run a campaign on the hosts (it goes on if this command goes), then
    collect its logs and report."""
    from shoal.bench.load import load_campaign
    from shoal.bench.run import start_campaign

    c = load_campaign(campaign)
    p = start_campaign(c, out, nodes=nodes)
    print(
        f"campaign {c.name} started on {len(p.hosts)} host(s) (job {p.job_id});"
        f" follow it with: shoal bench status {out} --wait",
        file=sys.stderr,
    )
    if not detach:
        _follow(out, plots)


@app.command("status")
def status(
    results: Results,
    wait: Annotated[bool, typer.Option("--wait", help="Follow it until it ends.")] = False,
    plots: Plots = True,
) -> None:
    """Where a campaign is on every host; once it ended, collect and report."""
    from shoal.bench.run import status as get

    if wait:
        _follow(results, plots)
        return
    p = get(results)
    _hosts(p)
    if p.finished:
        _collect(p, plots)


@app.command("stop")
def stop(results: Results, plots: Plots = True) -> None:
    """Stop a campaign on every host (its commands die, their scratch goes),
    then collect and report what ran."""
    from shoal.bench.run import status as get

    p = get(results, stop=True)
    _hosts(p)
    _collect(p, plots)


@app.command("gc")
def gc(
    nodes: Annotated[str, typer.Option("-w", "--nodes", help="Node set.")],
) -> None:
    """Remove the logs that ended campaigns left on the nodes (collect first)."""
    from shoal import fanout
    from shoal.cli.output import say

    listed = fanout.jobs(nodes, kind="bench")
    ended = {n.name: [j.job_id for j in n.jobs if j.state != "running"] for n in listed if n.ok}
    removed = 0
    for node, ids in ended.items():
        for job_id in ids:
            r = fanout.jobs(node, job_id=job_id, forget=True)
            removed += r.ok
    running = sum(j.state == "running" for n in listed for j in n.jobs)
    print(f"removed {removed} ended campaign(s) from {len(ended)} node(s); {running} running kept")
    bad = [n for n in listed if not n.ok]
    for n in bad:
        say(f"{n.name}: {n.state}: {n.reason}")
    if bad:
        raise typer.Exit(4)


def _hosts(p: object) -> None:
    from shoal.bench.run import Progress
    from shoal.cli.tables import row, show, table

    assert isinstance(p, Progress)
    t = table("host", "state", "stages", "reason", title=f"job {p.job_id}")
    for h in p.hosts:
        row(t, h.host, h.state, f"{h.stage}/{h.stages}" if h.stages else "-", h.reason)
    show(t)


def _follow(out: Path, plots: bool) -> None:
    from shoal.bench.run import Progress, follow

    seen: dict[str, tuple[str, int]] = {}

    def progress(p: Progress) -> None:
        for h in p.hosts:
            now = (h.state, h.stage)
            if seen.get(h.host) != now:
                seen[h.host] = now
                print(f"{h.host}: {h.state} {h.stage}/{h.stages}", file=sys.stderr)

    try:
        p = follow(out, on_progress=progress)
    except (KeyboardInterrupt, Interrupted):
        print(
            f"shoal: bench: detached; the campaign goes on: shoal bench status {out}",
            file=sys.stderr,
        )
        raise typer.Exit(130) from None
    _collect(p, plots)


def _collect(p: object, plots: bool) -> None:
    from shoal.bench.report import build_report
    from shoal.bench.run import Progress, collect

    assert isinstance(p, Progress)
    parsed, slots = collect(p)
    states: dict[str, int] = {}
    for r in slots:
        states[r.state] = states.get(r.state, 0) + 1
    from shoal.bench.units import human

    freed = sum(r.scratch_freed for r in slots)
    print(
        f"{len(slots)} slot run(s): "
        + ", ".join(f"{k} {v}" for k, v in sorted(states.items()))
        + f"; scratch freed: {human(freed)}"
    )
    if parsed is None:
        print("shoal: bench: no repetition's log came back: nothing to report", file=sys.stderr)
        return
    for w in parsed.warnings:
        print(f"shoal: bench run: warning: {w}", file=sys.stderr)
    _emit(build_report(parsed.to_json()), p.out, plots)


@app.command("parse")
def parse(
    logs: Annotated[list[str], typer.Argument(help="Log files or globs ('logs/**/*.log').")],
    phases: Annotated[
        Path, typer.Option("--phases", "-p", help="Campaign file with [[phases]], [[metrics]].")
    ],
    group: Annotated[
        str | None,
        typer.Option(
            "--group", "-g", help="Regex with named groups on each path: layout, rep, host, slot."
        ),
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Results directory.")] = Path(
        "bench-results"
    ),
    plots: Plots = True,
) -> None:
    """Extract phases and metrics from existing logs, then report."""
    from shoal.bench.extract import parse_logs
    from shoal.bench.load import load_campaign
    from shoal.bench.report import build_report

    c = load_campaign(phases)
    parsed = parse_logs(logs, c, group)
    for w in parsed.warnings:
        print(f"shoal: bench parse: warning: {w}", file=sys.stderr)
    saved = parsed.save(out)
    complete = sum(r.status == "complete" for r in parsed.runs)
    print(
        f"{len(parsed.files)} log(s): {complete} complete run(s), "
        f"{len(parsed.runs) - complete} incomplete, {len(parsed.metrics)} metric value(s): {saved}"
    )
    _emit(build_report(parsed.to_json()), out, plots)


@app.command("report")
def report(
    results: Annotated[Path, typer.Argument(help="Results directory (or its runs.json).")],
    compare: Annotated[
        Path | None, typer.Option("--compare", help="Another campaign's results.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Where the files go [default: RESULTS].")
    ] = None,
    plots: Plots = True,
) -> None:
    """Tables, CSV/JSON/Markdown files and PNG plots of a campaign's results."""
    from shoal.bench.report import build_report, load_results

    data = load_results(results)
    other = load_results(compare) if compare is not None else None
    where = out or (results if results.is_dir() else results.parent)
    _emit(build_report(data, other), where, plots)


def _emit(rep: Report, out: Path, plots: bool) -> None:
    from shoal.bench import output
    from shoal.cli.tables import row, show, table

    t = table(*output.TERMINAL_COLUMNS, title=f"campaign {rep.campaign} (seconds)")
    for cells in output.terminal_rows(rep):
        row(t, *cells)
    tp = table(*output.THROUGHPUT_COLUMNS, title="throughput per host (items per hour)")
    for cells in output.throughput_rows(rep):
        row(tp, *cells)
    items: list[object] = [t, tp]
    if rep.changes:
        ch = table(*output.CHANGE_COLUMNS, title=f"change against {rep.compared_with}")
        for cells in output.change_rows(rep):
            row(ch, *cells)
        items.append(ch)
    show(*items)
    from rich.text import Text

    show(*(Text(line) for line in output.verdict_lines(rep)))
    for n in rep.notes:
        print(f"note: {n}", file=sys.stderr)
    files = output.write_files(rep, out)
    if plots:
        from shoal.bench.plots import write_plots

        files += write_plots(rep, out)
    print(f"wrote {len(files)} file(s) to {out}/: " + ", ".join(p.name for p in files))
