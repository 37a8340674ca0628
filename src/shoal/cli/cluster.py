"""`shoal cluster`: a local cluster of real agents on this machine."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from shoal.errors import EXIT_UNREACHABLE, UsageError

app = typer.Typer(
    rich_markup_mode=None,
    help="Start and stop a local cluster of agents.",
    no_args_is_help=True,
)


@app.command("up")
def up(
    n: Annotated[int, typer.Option("-n", "--nodes", help="How many nodes (node1..nodeN).")] = 8,
    per_process: Annotated[
        int,
        typer.Option("--per-process", help="Agents hosted per process (for 1,024-node tests)."),
    ] = 1,
    base_port: Annotated[
        int | None,
        typer.Option("--base-port", help="First port (node i gets P+i-1) [default: free ports]."),
    ] = None,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="Agents without TLS (loudly announced).")
    ] = False,
    netns: Annotated[
        int | None,
        typer.Option(
            "--netns",
            help="N nodes as network namespaces on a bridge, each its own address (root).",
        ),
    ] = None,
    rate: Annotated[
        str | None,
        typer.Option("--rate", help="With --netns: shape every link (tbf), e.g. 200mbit."),
    ] = None,
    controller: Annotated[
        str | None,
        typer.Option(
            "--controller",
            help="Fleet controller URL: every agent registers and heartbeats there.",
        ),
    ] = None,
) -> None:
    """Start N agents (TLS on, certificates made) and write an inventory."""
    from shoal.core.nodeset import fold
    from shoal.deploy.localcluster import LocalCluster, isolation_note

    if netns is not None and netns < 1:
        raise UsageError(f"--netns {netns}: give the number of nodes, at least 1")
    c = LocalCluster()
    names = c.start(
        netns if netns is not None else n,
        per_process=per_process,
        base_port=base_port,
        insecure=insecure,
        netns=netns is not None,
        rate=rate,
        controller=controller,
    )
    procs = len(c.state.procs)
    print(f"cluster up: {fold(names)} ({len(names)} nodes, {procs} processes)")
    if c.state.netns:
        first, last = c.addresses[names[0]], c.addresses[names[-1]]
        shaped = f", every link shaped to {rate} (tbf)" if rate else ""
        print(f"each node in its own network namespace: {first} .. {last}{shaped}")
    if controller:
        print(f"agents register with the controller at {controller}")
    if c.state.isolated:
        print("each process has its own hostname and /tmp (UTS and mount namespaces)")
    note = isolation_note(per_process)
    if note:
        print(f"note: {note}", file=sys.stderr)
    if c.state.default_inventory:
        print(f"inventory: {c.default_inventory}")
        print(f"try: shoal run -w '{fold(names[:8])}' -- hostname")
    else:
        print(
            f"inventory: {c.inventory_path} ({c.default_inventory} exists and is not"
            " the cluster's: pass --inventory)"
        )
        print(f"try: shoal run --inventory {c.inventory_path} -w '{fold(names[:8])}' -- hostname")


@app.command("status")
def status(
    json_out: Annotated[bool, typer.Option("--json", help="One JSON document.")] = False,
) -> None:
    """Show every node of the local cluster: address, pid, up or down."""
    import json

    from shoal.deploy.localcluster import LocalCluster

    c = LocalCluster()
    rows = c.status()
    if json_out:
        print(json.dumps({"home": str(c.home), "nodes": rows}))
        if not all(r["up"] for r in rows):
            raise typer.Exit(EXIT_UNREACHABLE)
        return
    if not rows:
        print("no local cluster")
        return
    print(f"{'NODE':<12} {'ADDRESS':<22} {'PID':>8}  STATE")
    for r in rows:
        print(
            f"{r['name']!s:<12} {r['address']!s:<22} {r['pid']!s:>8}  {'up' if r['up'] else 'down'}"
        )
    up_n = sum(1 for r in rows if r["up"])
    print(f"{up_n}/{len(rows)} up; inventory: {c.inventory_path}")
    if up_n < len(rows):
        raise typer.Exit(EXIT_UNREACHABLE)


@app.command("down")
def down(
    keep: Annotated[
        bool, typer.Option("--keep", help="Keep each node's private /tmp for the next up.")
    ] = False,
) -> None:
    """Stop every agent (SIGTERM, then SIGKILL) and remove the cluster's state
    and each node's private /tmp."""
    from shoal.deploy.localcluster import LocalCluster

    stopped = LocalCluster().down(keep=keep)
    print(f"cluster down ({stopped} processes stopped)" if stopped else "no local cluster running")
