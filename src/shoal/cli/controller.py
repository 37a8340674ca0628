"""`shoal controller`: run the fleet controller."""

from __future__ import annotations

from typing import Annotated

import typer


def controller(
    db: Annotated[str | None, typer.Option("--db", help="sqlite:///PATH or postgresql://…")] = None,
    listen: Annotated[str | None, typer.Option("--listen", help="HOST:PORT")] = None,
    insecure: Annotated[
        bool | None, typer.Option("--insecure", help="Plain HTTP, no client certificates.")
    ] = None,
    policy: Annotated[str | None, typer.Option(help="mark-down or replace")] = None,
    provider: Annotated[str | None, typer.Option(help="none, local, command or libcloud")] = None,
) -> None:
    """Run the fleet controller: registry, watchdog, replacement, cron jobs, metrics."""
    import asyncio
    import logging

    from shoal.fleet.server import serve
    from shoal.fleet.settings import ControllerSettings

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    s = ControllerSettings.load(
        db=db, listen=listen, insecure=insecure, policy=policy, provider=provider
    )
    if s.insecure:
        typer.secho(
            "WARNING: --insecure: the controller API is plain HTTP with no authentication"
            " and no roles: anyone who can reach it may change the fleet and run commands on it",
            err=True,
            fg="red",
            bold=True,
        )
    asyncio.run(serve(s))
