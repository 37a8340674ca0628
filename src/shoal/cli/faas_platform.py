"""`shoal faas scheduler | invoke | functions | replay`: the function
platform on the agents, commands of the `shoal faas` group."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from shoal.core.config import Settings

TracePath = Annotated[
    Path, typer.Option("--trace", help="An Azure 2019 directory or file, or a 2021 CSV.")
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON.")]
Seed = Annotated[int, typer.Option("--seed", help="Seed for spreading calls in a minute.")]

Inv = Annotated[Path | None, typer.Option("--inventory", help="Inventory TOML file.")]
Insecure = Annotated[bool, typer.Option("--insecure", help="Plain text, no TLS.")]
SchedulerAddr = Annotated[
    str | None,
    typer.Option("--scheduler", help="HOST:PORT [the one running here, from $SHOAL_HOME/faas]."),
]


def _settings(inventory: Path | None, insecure: bool) -> Settings:
    from shoal.core.config import Settings

    return Settings.load(inventory=inventory, insecure=insecure or None)


def scheduler(
    nodes: Annotated[
        str | None, typer.Option("-w", "--nodes", help="The node set it may reserve.")
    ] = None,
    from_controller: Annotated[
        bool,
        typer.Option(
            "--from-controller", help="Reserve the fleet controller's running nodes instead."
        ),
    ] = False,
    controller: Annotated[
        str | None,
        typer.Option("--controller", help="The controller's URL [SHOAL_CONTROLLER_URL]."),
    ] = None,
    fleet_pool: Annotated[
        str | None,
        typer.Option("--pool", help="With --from-controller: only the nodes of this pool."),
    ] = None,
    policy: Annotated[
        str,
        typer.Option(
            "--policy", help="Keep-alive: none, ttl-10, ttl-20, hybrid, greedy-dual, shoal."
        ),
    ] = "shoal",
    listen: Annotated[str, typer.Option("--listen", help="HOST:PORT to serve on.")] = "127.0.0.1:0",
    functions: Annotated[
        Path | None, typer.Option("--functions", help="TOML file of [functions.NAME] tables.")
    ] = None,
    node_memory: Annotated[
        int, typer.Option("--node-memory", help="MiB a node offers to functions.")
    ] = 3072,
    start_nodes: Annotated[
        int, typer.Option("--start-nodes", help="Nodes reserved at start.")
    ] = 10,
    max_nodes: Annotated[int, typer.Option("--max-nodes", help="Most nodes held.")] = 20,
    placement: Annotated[str, typer.Option("--placement", help="pack or spread.")] = "pack",
    code_root: Annotated[
        str, typer.Option("--code-root", help="Where functions' code goes on the nodes.")
    ] = "/var/tmp/shoal-faas",
    inventory: Inv = None,
    insecure: Insecure = False,
) -> None:
    """Serve the mini-faas Scheduler and ResourceManager APIs over the nodes'
    agents until Ctrl-C or SIGTERM; then remove every container."""
    import asyncio
    import logging

    from shoal.core.config import Settings
    from shoal.errors import UsageError
    from shoal.faas.registry import make_policy
    from shoal.faas.scheduler import Options
    from shoal.faas.service import Running, serve_until_stopped

    if (nodes is None) == (not from_controller):
        raise UsageError("give the nodes: -w NODESET, or --from-controller (not both)")
    if (fleet_pool is not None or controller is not None) and not from_controller:
        raise UsageError("--pool and --controller go with --from-controller")
    if node_memory < 1 or start_nodes < 0 or max_nodes < 1 or start_nodes > max_nodes:
        raise UsageError(
            "--node-memory and --max-nodes must be positive, --start-nodes in [0, max]"
        )
    if placement not in ("pack", "spread"):
        raise UsageError(f"unknown placement {placement!r}; one of: pack, spread")
    if not code_root.startswith("/"):
        raise UsageError(f"--code-root {code_root!r} must be an absolute path on the nodes")
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    s = Settings.load(inventory=inventory, insecure=insecure or None, controller_url=controller)
    pol = make_policy(policy)
    opts = Options(nodes=start_nodes, max_nodes=max_nodes, placement=placement)

    def ready(r: Running) -> None:
        held = len(r.scheduler.nodes)
        print(
            f"scheduler listening on port {r.served.port}: {held} node(s), policy {pol.name}",
            flush=True,
        )

    usage = asyncio.run(
        serve_until_stopped(
            nodes,
            pol,
            settings=s,
            on_ready=ready,
            listen=listen,
            node_memory=node_memory << 20,
            options=opts,
            functions=functions,
            code_root=code_root,
            fleet_pool=fleet_pool,
        )
    )
    print(
        f"stopped: {usage['acquired']} call(s), {usage['cold']} cold, "
        f"{usage['created']} container(s) made, all removed"
    )


def invoke(
    function: Annotated[str, typer.Argument(help="The function's name.")],
    event: Annotated[str, typer.Option("--event", help="The event (JSON or any text).")] = "",
    handler: Annotated[
        str | None,
        typer.Option("--handler", help="module:function or a command, if not registered."),
    ] = None,
    memory: Annotated[int, typer.Option("--memory", help="MiB, with --handler.")] = 128,
    timeout_ms: Annotated[int, typer.Option("--timeout-ms", help="With --handler.")] = 60_000,
    scheduler: SchedulerAddr = None,
    json_out: Json = False,
    insecure: Insecure = False,
) -> None:
    """Call a function once through the scheduler, as a mini-faas API server
    would; print what it returned (its log and timings on stderr)."""
    import asyncio
    import sys

    from shoal.core.wire.shoal.v1 import faas_pb2 as xpb
    from shoal.errors import SchedulingError, ServiceError, UsageError
    from shoal.faas.client import Client, Invocation, scheduler_address

    s = _settings(None, insecure)
    try:
        addr = scheduler_address(s, scheduler)
    except SchedulingError as e:
        raise ServiceError(e.message) from None
    config = None
    if handler is not None:
        if memory < 1 or timeout_ms < 1:
            raise UsageError("--memory and --timeout-ms must be positive")
        config = xpb.FunctionConfig(
            handler=handler, memory_in_bytes=memory << 20, timeout_in_ms=timeout_ms
        )

    async def once() -> Invocation:
        c = Client(addr, s)
        try:
            return await c.invoke(function, event.encode(), config=config)
        finally:
            await c.close()

    try:
        inv = asyncio.run(once())
    except SchedulingError as e:
        if e.status in ("UNAVAILABLE", "DEADLINE_EXCEEDED"):
            raise ServiceError(e.message) from None
        code = 1 if e.status == "RESOURCE_EXHAUSTED" else 2
        raise UsageError(e.message, exit_code=code) from None
    if json_out:
        out = {
            "request_id": inv.request_id,
            "node": inv.node,
            "container": inv.container,
            "cold": inv.cold,
            "scheduling_ms": inv.scheduling_ns / 1e6,
            "duration_ms": inv.duration_ns / 1e6,
            "max_memory": inv.max_memory,
            "body": inv.body.decode(errors="replace"),
            "log": inv.log,
            "error_code": inv.error_code,
            "error_message": inv.error_message,
        }
        print(json.dumps(out, indent=2))
    else:
        if inv.log:
            sys.stderr.write(inv.log if inv.log.endswith("\n") else inv.log + "\n")
        sys.stdout.buffer.write(
            inv.body + (b"" if inv.body.endswith(b"\n") or not inv.body else b"\n")
        )
        print(
            f"{function}: {'cold' if inv.cold else 'warm'} on {inv.node}, "
            f"scheduling {inv.scheduling_ns / 1e6:.2f} ms, run {inv.duration_ns / 1e6:.2f} ms, "
            f"peak {inv.max_memory / 2**20:.1f} MiB",
            file=sys.stderr,
        )
    if not inv.ok:
        print(f"shoal: error: {function}: {inv.error_code}: {inv.error_message}", file=sys.stderr)
        raise typer.Exit(1)


def replay(
    trace: TracePath,
    nodes: Annotated[str, typer.Option("-w", "--nodes", help="The node set to run on.")],
    policy: Annotated[
        str, typer.Option("--policy", help="none, ttl-10, ttl-20, hybrid, greedy-dual, shoal.")
    ] = "shoal",
    speed: Annotated[float, typer.Option("--speed", help="Trace seconds per real second.")] = 1.0,
    limit_s: Annotated[
        float | None, typer.Option("--limit-s", help="Only calls in the first S (real) seconds.")
    ] = None,
    node_memory: Annotated[
        int, typer.Option("--node-memory", help="MiB a node offers to functions.")
    ] = 3072,
    learn: Annotated[
        bool,
        typer.Option(
            "--learn/--no-learn", help="Learn calls per container (the simulator learns too)."
        ),
    ] = False,
    seed: Seed = 0,
    json_out: Json = False,
    inventory: Inv = None,
    insecure: Insecure = False,
) -> None:
    """Replay a trace against the real scheduler on the nodes, time-scaled, and
    print it beside what the simulator predicts for the same calls."""
    import asyncio

    from shoal.cli.tables import row, show, table
    from shoal.errors import UsageError
    from shoal.faas.azure import load_trace
    from shoal.faas.registry import make_policy
    from shoal.faas.replay import predicted, replay_trace, scaled
    from shoal.faas.scheduler import MAX_CAP, Options
    from shoal.fanout.client import resolve

    if node_memory < 1:
        raise UsageError("--node-memory must be positive")
    if limit_s is not None and not limit_s > 0:
        raise UsageError("--limit-s must be positive")
    s = _settings(inventory, insecure)
    n = len(resolve([nodes], [], s).nodes)
    t = scaled(load_trace(trace, seed=seed), speed, limit_s)
    opts = Options(nodes=n, max_nodes=n, min_nodes=n, learn=learn)
    got = asyncio.run(
        replay_trace(
            t, make_policy(policy), nodes, settings=s, node_memory=node_memory << 20, options=opts
        )
    )
    real = got.to_json()
    sim = predicted(
        t,
        make_policy(policy),
        got,
        nodes=n,
        node_memory=node_memory << 20,
        max_calls=MAX_CAP if learn else 1,
        policy_cold_start=opts.cold_start_s,
    )
    if json_out:
        print(
            json.dumps({"policy": policy, "speed": speed, "real": real, "simulated": sim}, indent=2)
        )
        return
    tab = table("metric", "real", "simulated", title=f"{policy} on {trace} x{speed:g}, {n} node(s)")
    for k in ("calls", "cold", "cold_ratio", "errors", "mean_sl_ms", "wasted_gbs"):
        a, b = real[k], sim[k]
        row(tab, k, *(f"{v:.4g}" if isinstance(v, float) else str(v) for v in (a, b)))
    row(tab, "p99_sl_ms", f"{real['p99_sl_ms']:.4g}", "")
    row(tab, "containers", str(real["containers"]), "")
    show(tab)
    if real["errors"]:
        print(f"first errors: {'; '.join(real['first_errors'])}")


def functions_(
    scheduler: SchedulerAddr = None, json_out: Json = False, insecure: Insecure = False
) -> None:
    """The functions a running scheduler knows (the APIServer's ListFunctions)."""
    import asyncio

    from shoal.cli.tables import row, show, table
    from shoal.errors import SchedulingError, ServiceError
    from shoal.faas.client import Client, scheduler_address

    s = _settings(None, insecure)

    async def ask() -> list[object]:
        c = Client(scheduler_address(s, scheduler), s)
        try:
            return list(await c.list_functions())
        finally:
            await c.close()

    try:
        fns = asyncio.run(ask())
    except SchedulingError as e:
        raise ServiceError(e.message) from None
    keys = ("function_name", "handler", "memory_in_bytes", "timeout_in_ms", "containers",
            "in_flight", "concurrency")  # fmt: skip
    docs = [{k: getattr(f, k) for k in keys} for f in fns]
    if json_out:
        print(json.dumps(docs, indent=2))
        return
    tab = table(
        "function", "handler", "MiB", "timeout ms", "containers", "in flight", "per container"
    )
    for d in docs:
        row(tab, d["function_name"], d["handler"], str(d["memory_in_bytes"] >> 20),
            str(d["timeout_in_ms"]), str(d["containers"]), str(d["in_flight"]),
            str(d["concurrency"]))  # fmt: skip
    show(tab)


# added to the `shoal faas` group by cli/app.py
COMMANDS: dict[str, Callable[..., None]] = {
    "scheduler": scheduler,
    "invoke": invoke,
    "replay": replay,
    "functions": functions_,
}
