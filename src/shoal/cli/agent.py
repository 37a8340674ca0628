"""`shoal agent`: the node daemon (one agent, or many in one process)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from shoal.core.inventory import parse_listen
from shoal.errors import ConfigError, UsageError


def _identity(
    name: str, tls_dir: Path | None, ca: Path | None, cert: Path | None, key: Path | None
) -> Any:
    from shoal.core import tls
    from shoal.core.config import Settings

    if ca or cert or key:
        if not (ca and cert and key):
            raise UsageError("--ca-cert, --cert and --key go together")
        ident = tls.Identity(ca, cert, key)
    else:
        ident = tls.Identity.in_dir(tls_dir or Settings.load().tls_dir, name)
    ident.read()  # a missing file: one line naming `shoal ca`, exit 5
    return ident


SPEC_KEYS = frozenset(
    {"name", "host", "port", "tls_dir", "insecure", "files_root", "bulk_port", "faas_spares"}
)


def _specs_from_file(path: Path) -> list[Any]:
    from shoal.agent.server import AgentSpec
    from shoal.agent.spares import SPARES

    try:
        items = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"spec file {path}: {e}") from e
    if not isinstance(items, list):
        raise ConfigError(f"spec file {path}: a JSON list of agents, not {type(items).__name__}")
    specs = []
    for it in items:
        unknown = sorted(set(it) - SPEC_KEYS) if isinstance(it, dict) else []
        if unknown:
            raise ConfigError(
                f"spec file {path}: unknown key(s) {', '.join(unknown)} in {it!r}"
                f" (known: {', '.join(sorted(SPEC_KEYS))})"
            )
        try:
            name = str(it["name"])
            ident = (
                None
                if it.get("insecure")
                else _identity(
                    name, Path(it["tls_dir"]) if it.get("tls_dir") else None, None, None, None
                )
            )
            root = Path(it["files_root"]) if it.get("files_root") else None
            host, port = str(it.get("host", "127.0.0.1")), int(it["port"])
            spares = int(it.get("faas_spares", SPARES))
            if spares < 0:
                raise ValueError("faas_spares must not be negative")
            bulk = int(it.get("bulk_port", 0))
            specs.append(AgentSpec(name, host, port, ident, root, bulk, spares))
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"spec file {path}: bad entry {it!r}: {e}") from e
    return specs


def agent(
    name: Annotated[
        str | None, typer.Option("--name", help="This node's name (its certificate's CN).")
    ] = None,
    listen: Annotated[
        str, typer.Option("--listen", help="HOST:PORT to listen on.")
    ] = "0.0.0.0:1995",
    tls_dir: Annotated[
        Path | None,
        typer.Option(
            "--tls-dir",
            help="Directory with ca.crt, NAME.crt, NAME.key [default: $SHOAL_HOME/tls].",
        ),
    ] = None,
    ca_cert: Annotated[Path | None, typer.Option("--ca-cert")] = None,
    cert: Annotated[Path | None, typer.Option("--cert")] = None,
    key: Annotated[Path | None, typer.Option("--key")] = None,
    insecure: Annotated[
        bool,
        typer.Option(
            "--insecure",
            help="Plain text, no TLS: anyone who reaches the port runs commands."
            " Announced on every start.",
        ),
    ] = False,
    files_root: Annotated[
        Path | None,
        typer.Option("--files-root", help="Where absolute copy paths start [default: /]."),
    ] = None,
    faas_spares: Annotated[
        int,
        typer.Option(
            "--faas-spares",
            help="Warm workers kept for faas containers once this node runs functions"
            " (0: none) [default: 2].",
        ),
    ] = 2,
    bulk_port: Annotated[
        int,
        typer.Option(
            "--bulk-port",
            help="TCP port of copy's bulk data plane, on the --listen host (firewalls)"
            " [default: any free port, logged at start].",
        ),
    ] = 0,
    controller: Annotated[
        str | None,
        typer.Option(
            "--controller",
            help="Fleet controller URL (https://ctl:8443): register with facts and heartbeat.",
        ),
    ] = None,
    heartbeat: Annotated[
        float, typer.Option("--heartbeat", help="Seconds between heartbeats.")
    ] = 10.0,
    pool: Annotated[
        str | None, typer.Option("--pool", help="Pool this node belongs to (controller).")
    ] = None,
    no_sandbox: Annotated[
        bool,
        typer.Option(
            "--no-sandbox",
            help="Run commands without cgroups (to measure the sandbox's cost): what"
            " escapes a process group survives; announced on every start"
            " [SHOAL_SANDBOX=off].",
        ),
    ] = False,
    spec_file: Annotated[
        Path | None,
        typer.Option(
            "--spec-file",
            help="JSON list of {name, host, port, tls_dir?, insecure?, files_root?,"
            " bulk_port?, faas_spares?}:"
            " host many agents in this process.",
        ),
    ] = None,
) -> None:
    """Run the node agent until SIGTERM/SIGINT. Prints `ready NAME PORT` per agent
    on stdout once listening. SIGTERM kills running commands and exits 0."""
    import asyncio
    import socket

    from shoal.agent.server import AgentSpec, ControllerLink, serve

    if spec_file is not None:
        specs = _specs_from_file(spec_file)
    else:
        name = name or socket.gethostname()
        addr = parse_listen(listen)
        host, port = addr.host or "0.0.0.0", addr.port
        ident = None if insecure else _identity(name, tls_dir, ca_cert, cert, key)
        if not 0 <= bulk_port < 65536:
            raise UsageError(f"--bulk-port {bulk_port}: not a TCP port")
        if faas_spares < 0:
            raise UsageError(f"--faas-spares {faas_spares}: must not be negative")
        specs = [AgentSpec(name, host, port, ident, files_root, bulk_port, faas_spares)]
    if not specs:
        raise UsageError("no agents to run")

    def ready(ports: list[int]) -> None:
        for s, p in zip(specs, ports, strict=True):
            print(f"ready {s.name} {p}", flush=True)

    if heartbeat <= 0:
        raise UsageError("--heartbeat must be positive")
    link = ControllerLink(controller, heartbeat, pool) if controller else None
    from shoal.core.config import Settings

    settings = Settings.load(sandbox=False if no_sandbox else None)
    try:
        asyncio.run(
            serve(
                specs,
                on_ready=ready,
                controller=link,
                keepalive=settings.keepalive,
                sandbox=settings.sandbox,
                state=settings.home / "agent",
            )
        )
    except OSError as e:
        raise ConfigError(f"agent: {e}") from e
