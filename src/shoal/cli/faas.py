"""`shoal faas`: simulate a keep-alive policy on a trace, the oracle's bounds,
generate traces (here); the scheduler, invoke, functions and replay
(cli/faas_platform.py). Parses, calls shoal.faas, prints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from shoal.faas.simulate import Config

app = typer.Typer(
    rich_markup_mode=None,
    help="Function platform: a scheduler of warm containers on the agents, and a trace evaluator.",
    no_args_is_help=True,
)
trace_app = typer.Typer(rich_markup_mode=None, help="Trace files.", no_args_is_help=True)
app.add_typer(trace_app, name="trace")

TracePath = Annotated[
    Path, typer.Option("--trace", help="An Azure 2019 directory or file, or a 2021 CSV.")
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON.")]
ColdStart = Annotated[float, typer.Option("--cold-start", help="Container start, seconds.")]
Placement = Annotated[str, typer.Option("--placement", help="first-fit or pack.")]
Seed = Annotated[int, typer.Option("--seed", help="Seed for spreading calls in a minute.")]


def _config(cold_start: float, placement: str, max_calls: int = 1) -> Config:
    from shoal.errors import UsageError
    from shoal.faas.simulate import Config

    if placement not in ("first-fit", "pack"):
        raise UsageError(f"unknown placement {placement!r}; one of: first-fit, pack")
    if not 0 < cold_start <= 600:
        raise UsageError(f"--cold-start must be in (0, 600] seconds, got {cold_start}")
    if not 1 <= max_calls <= 64:
        raise UsageError(f"--max-calls must be in [1, 64], got {max_calls}")
    return Config(cold_start=cold_start, placement=placement, max_calls=max_calls)


@app.command("simulate")
def simulate(
    trace: TracePath,
    policy: Annotated[
        str, typer.Option("--policy", help="none, ttl-10, ttl-20, hybrid, greedy-dual, shoal.")
    ],
    cold_start: ColdStart = 1.0,
    placement: Placement = "first-fit",
    max_calls: Annotated[
        int,
        typer.Option(
            "--max-calls", help="Calls a container may take at once, learned as the scheduler does."
        ),
    ] = 1,
    seed: Seed = 0,
    json_out: Json = False,
) -> None:
    """Run one policy on a trace, with the baseline (10-minute TTL, first-fit,
    one call per container) for the score."""
    from shoal.cli.tables import row, show, table
    from shoal.faas.azure import load_trace
    from shoal.faas.registry import make_policy
    from shoal.faas.simulate import Config, simulate_trace

    pol = make_policy(policy)
    config = _config(cold_start, placement, max_calls)
    t = load_trace(trace, seed=seed)
    base = simulate_trace(t, make_policy("ttl-10"), Config(cold_start=cold_start))
    r = simulate_trace(t, pol, config)
    out = r.to_json(base)
    if json_out:
        print(json.dumps(out, indent=2))
        return
    tab = table("metric", "value", title=f"{r.policy} on {trace}")
    for k in (
        "calls",
        "cold",
        "cold_ratio",
        "errors",
        "error_rate",
        "wasted_gbs",
        "nd",
        "rt",
        "score",
    ):
        v = out[k]
        row(tab, k, f"{v:.4g}" if isinstance(v, float) else v)
    show(tab)


@app.command("oracle")
def oracle(
    trace: TracePath, cold_start: ColdStart = 1.0, seed: Seed = 0, json_out: Json = False
) -> None:
    """Lower bounds from perfect knowledge of the trace."""
    from shoal.cli.tables import row, show, table
    from shoal.faas.azure import load_trace
    from shoal.faas.oracle import lower_bounds
    from shoal.faas.registry import make_policy
    from shoal.faas.simulate import Config, simulate_trace

    t = load_trace(trace, seed=seed)
    config = Config(cold_start=cold_start)
    base = simulate_trace(t, make_policy("ttl-10"), config)
    out = lower_bounds(t, config).to_json(base)
    if json_out:
        print(json.dumps(out, indent=2))
        return
    tab = table("bound", "value", title=f"oracle on {trace}")
    for k, v in out.items():
        row(tab, k, f"{v:.4g}" if isinstance(v, float) else v)
    show(tab)


@trace_app.command("generate")
def generate(
    out: Annotated[Path, typer.Option("--out", help="Directory to write into.")],
    functions: Annotated[int, typer.Option("--functions", help="How many functions.")] = 200,
    days: Annotated[int, typer.Option("--days", help="Simulated days (Azure format).")] = 1,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    burst: Annotated[
        bool, typer.Option("--burst", help="mini-faas-like bursts (2021 format).")
    ] = False,
    calls: Annotated[int, typer.Option("--calls", help="Calls in all, with --burst.")] = 73_300,
) -> None:
    """Write a seeded synthetic trace."""
    from shoal.errors import UsageError
    from shoal.faas.generate import generate_azure, generate_burst

    if functions < 1 or days < 1 or calls < 1:
        raise UsageError("--functions, --days and --calls must be at least 1")
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: not a directory")
    if burst:
        paths = generate_burst(out, functions=functions, calls=calls, seed=seed)
    else:
        paths = generate_azure(out, functions=functions, days=days, seed=seed)
    for p in paths:
        print(p)
