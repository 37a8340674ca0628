"""`shoal jobs`: cron jobs run by the controller."""

from __future__ import annotations

from typing import Annotated

import typer

from shoal.cli.nodes import Ctl, Insecure, Json

app = typer.Typer(
    rich_markup_mode=None,
    help="Cron jobs (robfig/cron syntax, seconds first).",
    no_args_is_help=True,
)


@app.command("add", context_settings={"allow_extra_args": True})
def add(
    ctx: typer.Context,
    name: Annotated[str, typer.Option("--name", help="Job name.")],
    cron: Annotated[str, typer.Option("--cron", help='e.g. "0 30 * * * *", "@every 1m30s"')],
    nodes: Annotated[str, typer.Option("-w", help="Node set.")] = "",
    ping: Annotated[bool, typer.Option("--ping", help="Ping sweep.")] = False,
    facts: Annotated[bool, typer.Option("--facts", help="Facts refresh.")] = False,
    metrics: Annotated[bool, typer.Option("--metrics", help="Push metrics to Statuspage.")] = False,
    controller: Ctl = None,
    json: Json = False,
    insecure: Insecure = False,
) -> None:
    """Add (or replace) a job: -w NODESET -- CMD | --ping | --facts | --metrics."""
    from shoal.cli._ctlclient import print_json, request
    from shoal.errors import UsageError
    from shoal.fleet.cronspec import parse

    parse(cron)  # a clear error naming the field, before any network
    cmd = ctx.args
    chosen = [a for a, on in (("ping", ping), ("facts", facts), ("metrics", metrics)) if on]
    if cmd:
        chosen.append("command")
    if len(chosen) != 1:
        raise UsageError("give exactly one of: -- COMMAND, --ping, --facts, --metrics")
    body = {
        "name": name,
        "cron": cron,
        "nodes": nodes,
        "action": chosen[0],
        # a shell command line, joined as `shoal run` joins it: same words, same effect
        "command": " ".join(cmd) if cmd else None,
    }
    d = request("POST", "/v1/jobs", controller, insecure, json=body)
    if json:
        print_json(d)
    else:
        print(f"job {d['name']} added; next run {d['next']}")


@app.command("list")
def list_(controller: Ctl = None, json: Json = False, insecure: Insecure = False) -> None:
    """Jobs and their next run."""
    from shoal.cli._ctlclient import print_json, request
    from shoal.cli.tables import row, show, table

    data = request("GET", "/v1/jobs", controller, insecure)
    if json:
        print_json(data)
        return
    t = table("NAME", "CRON", "ACTION", "NODES", "NEXT", "RUNNING")
    for j in data:
        what = j["command"] if j["action"] == "command" else j["action"]
        nxt = j["next"][:19] if j.get("next") else f"never: {j.get('error') or '?'}"
        row(t, j["name"], j["cron"], what, j["nodes"], nxt, "yes" if j["running"] else "")
    show(t)


@app.command("history")
def history(
    name: str,
    controller: Ctl = None,
    json: Json = False,
    insecure: Insecure = False,
    limit: int = 50,
) -> None:
    """A job's runs, newest first."""
    from shoal.cli._ctlclient import print_json, request
    from shoal.cli.tables import row, show, table

    data = request("GET", f"/v1/jobs/{name}/runs", controller, insecure, params={"limit": limit})
    if json:
        print_json(data)
        return
    t = table("SCHEDULED", "STATUS", "COALESCED", "FINISHED", "DETAIL")
    for r in data:
        d = r["detail"] or {}
        summary = (
            d.get("error")
            or d.get("reason")
            or ", ".join(f"{k}={v}" for k, v in sorted((d.get("nodes") or {}).items())[:5])
        )
        row(
            t,
            r["scheduled_at"][:19],
            r["status"],
            str(r["coalesced"] or ""),
            (r["finished_at"] or "")[:19],
            summary,
        )
    show(t)


@app.command("rm")
def rm(name: str, controller: Ctl = None, insecure: Insecure = False) -> None:
    """Remove a job (its history is kept)."""
    from shoal.cli._ctlclient import request

    request("DELETE", f"/v1/jobs/{name}", controller, insecure)
    print(f"job {name} removed")
