"""`shoal events`: what the controller did and why."""

from __future__ import annotations

from typing import Annotated

import typer

from shoal.cli.nodes import Ctl, Insecure, Json


def events(
    since: Annotated[str, typer.Option("--since", help="e.g. 30m, 1h, 2d")] = "1h",
    node: Annotated[str | None, typer.Option("--node")] = None,
    controller: Ctl = None,
    json: Json = False,
    insecure: Insecure = False,
) -> None:
    """Events: state transitions, replacements, circuit breaker, jobs."""
    from shoal.cli._ctlclient import parse_since, print_json, request
    from shoal.cli.tables import row, show, table

    params: dict[str, str | float] = {"since": parse_since(since)}
    if node:
        params["node"] = node
    data = request("GET", "/v1/events", controller, insecure, params=params)
    if json:
        print_json(data)
        return
    t = table("WHEN", "NODE", "EVENT", "FROM", "TO", "BY", "WHY")
    for e in data:
        row(
            t,
            e["at"][:19],
            e["node"] or "",
            e["kind"],
            e["from"] or "",
            e["to"] or "",
            e["actor"],
            e["reason"],
        )
    show(t)
