"""The one Typer app. Each command group lives in its own cli/<group>.py and
is registered here with one line."""

from __future__ import annotations

from typing import Annotated

import typer

from shoal import __version__

app = typer.Typer(
    name="shoal",
    help="Run work across a fleet of Linux nodes.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"shoal {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """shoal: fan-out, fleet, bench, faas and gateway on one core."""


# Command groups: one line each.
from shoal.cli import ca as _ca  # noqa: E402

app.add_typer(_ca.app, name="ca")
from shoal.cli import agent as _agent  # noqa: E402

app.command("agent")(_agent.agent)
from shoal.cli import run as _run  # noqa: E402

app.command("run", context_settings={"allow_interspersed_args": False})(_run.run)
app.command("ping")(_run.ping)
app.command("facts")(_run.facts)
from shoal.cli import copy as _copy  # noqa: E402

app.command("copy")(_copy.copy)
app.command("gather")(_copy.gather)
from shoal.cli import cluster as _cluster  # noqa: E402

app.add_typer(_cluster.app, name="cluster")
from shoal.cli import controller as _controller  # noqa: E402
from shoal.cli import events as _events  # noqa: E402
from shoal.cli import jobs as _jobs  # noqa: E402
from shoal.cli import nodes as _nodes  # noqa: E402

app.command("controller")(_controller.controller)
app.add_typer(_nodes.app, name="nodes")
app.add_typer(_jobs.app, name="jobs")
app.command("events")(_events.events)
from shoal.cli import gateway as _gateway  # noqa: E402

app.add_typer(_gateway.app, name="gateway")
