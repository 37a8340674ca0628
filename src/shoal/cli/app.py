"""The one Typer app. Each command group lives in its own cli/<group>.py and
is registered here by a small function, run only when that command is wanted."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer

from shoal import __version__

app = typer.Typer(
    rich_markup_mode=None,  # help and user text are printed as written: [[backend]] stays
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


# Command groups: one registration each, made only when wanted (see build).
def _ca() -> None:
    from shoal.cli import ca

    app.add_typer(ca.app, name="ca")


def _agent() -> None:
    from shoal.cli import agent

    app.command("agent")(agent.agent)


def _run() -> None:
    from shoal.cli import run

    app.command("run", context_settings={"allow_interspersed_args": False})(run.run)
    app.command("ping")(run.ping)
    app.command("facts")(run.facts)


def _copy() -> None:
    from shoal.cli import copy

    app.command("copy")(copy.copy)
    app.command("gather")(copy.gather)


def _cluster() -> None:
    from shoal.cli import cluster

    app.add_typer(cluster.app, name="cluster")


def _fleet() -> None:
    from shoal.cli import controller, events, jobs, nodes

    app.command("controller")(controller.controller)
    app.add_typer(nodes.app, name="nodes")
    app.add_typer(jobs.app, name="jobs")
    app.command("events")(events.events)


def _gateway() -> None:
    from shoal.cli import gateway

    app.add_typer(gateway.app, name="gateway")


def _bench() -> None:
    from shoal.cli import bench

    app.add_typer(bench.app, name="bench")


def _faas() -> None:
    from shoal.cli import faas, faas_platform

    for name, command in faas_platform.COMMANDS.items():
        faas.app.command(name)(command)
    app.add_typer(faas.app, name="faas")


COMMANDS: dict[str, Callable[[], None]] = {
    "ca": _ca,
    "agent": _agent,
    "run": _run,
    "ping": _run,
    "facts": _run,
    "copy": _copy,
    "gather": _copy,
    "cluster": _cluster,
    "controller": _fleet,
    "nodes": _fleet,
    "jobs": _fleet,
    "events": _fleet,
    "gateway": _gateway,
    "bench": _bench,
    "faas": _faas,
}


def build(argv: list[str]) -> typer.Typer:
    """The app with only the command being run registered: Typer reads the
    signature of every registered command at each start, a large share of a
    short command's client CPU. Help, --version and a mistyped command get all."""
    first = next((a for a in argv if not a.startswith("-")), None)
    wanted = [COMMANDS[first]] if first in COMMANDS else list(dict.fromkeys(COMMANDS.values()))
    for register in wanted:
        register()
    return app
