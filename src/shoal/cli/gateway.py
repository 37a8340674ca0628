"""`shoal gateway`: one Jobe REST API in front of many Jobe servers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    rich_markup_mode=None,
    help="Serve the Jobe REST API in front of many Jobe servers.",
    no_args_is_help=True,
)


@app.command("serve")
def serve(
    config: Annotated[Path, typer.Option("--config", "-c", help="TOML file with [[backend]].")],
    listen: Annotated[str | None, typer.Option(help="HOST:PORT [default: 127.0.0.1:8080]")] = None,
    redis: Annotated[
        str | None, typer.Option(help="Redis URL: share state with other gateways.")
    ] = None,
    balance: Annotated[
        str | None, typer.Option(help="p2c (default), random or round-robin.")
    ] = None,
    quiet: Annotated[bool, typer.Option(help="No access log.")] = False,
) -> None:
    """Run the gateway until interrupted."""
    from shoal.gateway.config import load_config
    from shoal.gateway.server import serve as run

    cfg = load_config(config, listen=listen, redis=redis, balance=balance)
    run(cfg, access_log=not quiet)


@app.command("status")
def status(
    url: Annotated[str, typer.Option(help="The gateway's base URL.")] = "http://127.0.0.1:8080",
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    key: Annotated[
        str | None,
        typer.Option(
            envvar="SHOAL_GATEWAY_OPERATOR_KEY",
            show_envvar=True,
            help="The gateway's operator_key (needed when it has API keys).",
        ),
    ] = None,
) -> None:
    """Print the backends of a running gateway."""
    import json

    import httpx
    from rich.console import Console

    from shoal.cli.tables import row, table
    from shoal.errors import ConfigError, ServiceError

    headers = {"X-API-KEY": key} if key else {}
    try:
        r = httpx.get(url.rstrip("/") + "/shoal/status", timeout=5, headers=headers)
        if r.status_code == 403:
            try:
                why = str(r.json())
            except ValueError:
                why = "403 Forbidden"
            hint = "wrong --key" if key else "give --key or SHOAL_GATEWAY_OPERATOR_KEY"
            raise ConfigError(f"gateway {url} refused the status: {why} ({hint})")
        r.raise_for_status()
        data = r.json()
    except (httpx.HTTPError, ValueError) as e:
        raise ServiceError(f"cannot read status from gateway {url}: {e}") from e
    if json_out:
        print(json.dumps(data, indent=2))
        return
    title = f"gateway {url}  balance={data['balance']}  queued={data['queued']}"
    if data.get("gateways", 1) > 1:
        title += f"  gateways={data['gateways']} (sharing slots through Redis)"
    if data.get("redis") == "away":
        title += "  redis=AWAY (going on alone)"
    elif data.get("redis"):
        title += f"  redis={data['redis']}"
    cols = ("backend", "state", "weight", "in flight", "runs", "latency", "ejections", "languages")
    t = table(*cols, title=title)
    for b in data["backends"]:
        state = "live" if b["live"] else f"ejected ({b['readmit_in']}s)"
        row(
            t,
            b["url"],
            state,
            f"{b['weight']:g}",
            f"{b['outstanding']}/{b.get('capacity_here', b['capacity'])}",
            str(b["runs"]),
            "-" if b.get("latency_ms") is None else f"{b['latency_ms']:.0f} ms",
            str(b["ejections"]),
            ",".join(b["languages"]),
        )
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)
    console.print(t)
