"""`shoal nodes`: the controller's node registry."""

from __future__ import annotations

from typing import Annotated, Any

import typer

app = typer.Typer(
    rich_markup_mode=None,
    help="Nodes known to the controller.",
    invoke_without_command=True,
)

Ctl = Annotated[str | None, typer.Option("--controller", help="URL [$SHOAL_CONTROLLER_URL]")]
Json = Annotated[bool, typer.Option("--json", help="JSON for scripts.")]
Insecure = Annotated[bool, typer.Option("--insecure", help="Allow a plain-HTTP controller.")]


def _gib(b: int | None) -> str:
    return f"{b / 2**30:.1f} GiB" if b else "-"


def _for_people(key: str, value: object, ago: Any) -> object:
    """Sizes in GiB, times as the time and how long ago (--json keeps the raw values)."""
    if value is None:
        return "-"
    if key in ("memory", "memory_total") and isinstance(value, int):
        return _gib(value)
    if key in ("last_heartbeat", "registered_at", "created_at") and isinstance(value, str):
        return f"{value[:19].replace('T', ' ')} ({ago(value)})"
    if key == "boot_time" and isinstance(value, int | float):
        import datetime as dt

        return dt.datetime.fromtimestamp(value, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    return value


@app.callback()
def nodes(
    ctx: typer.Context,
    controller: Ctl = None,
    json: Json = False,
    insecure: Insecure = False,
    state: Annotated[str | None, typer.Option(help="Only nodes in this state.")] = None,
) -> None:
    """Table: name, state, CPUs, memory, address, last heartbeat."""
    if ctx.invoked_subcommand is not None:
        return
    from shoal.cli._ctlclient import ago, print_json, request
    from shoal.cli.tables import row, show, table

    data = request(
        "GET", "/v1/nodes", controller, insecure, params={"state": state} if state else {}
    )
    if json:
        print_json(data)
        return
    t = table("NAME", "STATE", "CPUS", "MEMORY", "ADDRESS", "HEARTBEAT", "POOL")
    for n in data:
        row(
            t,
            n["name"],
            n["state"],
            str(n["cpus"] or "-"),
            _gib(n["memory"]),
            n["address"] or "-",
            ago(n["last_heartbeat"]),
            n["pool"],
        )
    show(t)


@app.command("show")
def show(name: str, controller: Ctl = None, json: Json = False, insecure: Insecure = False) -> None:
    """All facts and the node's event history."""
    from shoal.cli._ctlclient import ago, print_json, request
    from shoal.cli.tables import field, row, show, table

    d = request("GET", f"/v1/nodes/{name}", controller, insecure)
    if json:
        print_json(d)
        return
    lines = []
    for k in (
        "name",
        "state",
        "pool",
        "address",
        "cpus",
        "memory",
        "last_heartbeat",
        "registered_at",
        "created_at",
        "generation",
    ):
        lines.append(field(k, _for_people(k, d.get(k), ago)))
    f = d.get("facts") or {}
    for k, v in f.items():
        if k == "interfaces":
            for itf in v:
                addrs = " ".join(itf.get("addresses") or [])
                lines.append(
                    field("interface", f"{itf.get('name')} {itf.get('mac') or ''} {addrs}")
                )
        else:
            lines.append(field(k, _for_people(k, v, ago)))
    t = table("WHEN", "EVENT", "FROM", "TO", "BY", "WHY", title="events")
    for e in reversed(d["events"]):
        row(t, e["at"][:19], e["kind"], e["from"] or "", e["to"] or "", e["actor"], e["reason"])
    show(*lines, t)


def _drain(
    name: str, undo: bool, reason: str, controller: str | None, insecure: bool, json: bool
) -> None:
    from shoal.cli._ctlclient import print_json, request

    d = request(
        "POST",
        f"/v1/nodes/{name}/{'undrain' if undo else 'drain'}",
        controller,
        insecure,
        json={"reason": reason},
    )
    if json:
        print_json(d)
    else:
        print(f"{d['name']}: {d['state']}")


@app.command("drain")
def drain(
    name: str,
    reason: Annotated[str, typer.Option()] = "",
    controller: Ctl = None,
    json: Json = False,
    insecure: Insecure = False,
) -> None:
    """Take a node out of service (no watchdog action, no replacement)."""
    _drain(name, False, reason, controller, insecure, json)


@app.command("undrain")
def undrain(
    name: str,
    reason: Annotated[str, typer.Option()] = "",
    controller: Ctl = None,
    json: Json = False,
    insecure: Insecure = False,
) -> None:
    """Return a drained node to service."""
    _drain(name, True, reason, controller, insecure, json)
