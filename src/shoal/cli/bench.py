"""`shoal bench`: plan a campaign on the nodes, extract phases from logs,
report. Parses, calls shoal.bench, prints."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from shoal.bench.report import Report

app = typer.Typer(
    rich_markup_mode=None,
    help="Benchmark campaigns in cpuset slots: plan, parse logs, report.",
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


@app.command("run")
def run(
    campaign: Annotated[Path, typer.Argument(help="The campaign file (TOML).")],
    nodes: Nodes = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="A new results directory.")] = Path(
        "bench-results"
    ),
    plots: Plots = True,
) -> None:
    """Run the campaign from here (synchronous: it stops with this command)."""
    from shoal.bench.load import load_campaign
    from shoal.bench.report import build_report
    from shoal.bench.run import run_campaign

    c = load_campaign(campaign)
    parsed, slots = run_campaign(c, out, nodes=nodes)
    states: dict[str, int] = {}
    for r in slots:
        states[r.state] = states.get(r.state, 0) + 1
    print(f"{len(slots)} slot run(s): " + ", ".join(f"{k} {v}" for k, v in sorted(states.items())))
    for w in parsed.warnings:
        print(f"shoal: bench run: warning: {w}", file=sys.stderr)
    _emit(build_report(parsed.to_json()), out, plots)


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
