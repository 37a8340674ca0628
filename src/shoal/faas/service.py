"""A scheduler put together from settings: the nodes of a node set as its
pool, channels to their agents with the operator's certificate, functions
from a TOML file with their code sent to the nodes through the tree."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import shlex
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shoal.core.config import Settings, read_toml
from shoal.core.inventory import parse_address
from shoal.errors import UsageError
from shoal.faas.fleetpool import FleetPool
from shoal.faas.nodepool import Pool, StaticPool
from shoal.faas.policy import Policy
from shoal.faas.scheduler import Function, Options, Scheduler, dial_with
from shoal.faas.server import Served, serve
from shoal.fanout.client import client_credentials, client_identity, resolve
from shoal.tree.channels import Channels

FUNCTION_KEYS = {"handler", "memory_mb", "timeout_ms", "code"}
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
CODE_ROOT = "/var/tmp/shoal-faas"

log = logging.getLogger("shoal.faas")


def load_functions(
    path: Path, code_root: str = CODE_ROOT
) -> tuple[list[Function], dict[str, Path]]:
    """``[functions.NAME]`` tables: handler, memory_mb, timeout_ms, code (a
    local directory, relative to the file). Returns the functions and the
    code directories to send, by function name."""
    data = read_toml(path, "functions file")
    unknown = sorted(set(data) - {"functions"})
    if unknown:
        raise UsageError(f"{path}: unknown table(s) {', '.join(unknown)}; only [functions.NAME]")
    out: list[Function] = []
    code: dict[str, Path] = {}
    for name, t in (data.get("functions") or {}).items():
        where = f"{path}: [functions.{name}]"
        if not NAME.fullmatch(name) or not isinstance(t, dict):
            raise UsageError(f"{where}: a function is a table named with letters, digits, . _ -")
        extra = sorted(set(t) - FUNCTION_KEYS)
        if extra:
            raise UsageError(
                f"{where}: unknown key(s) {', '.join(extra)}; "
                f"known: {', '.join(sorted(FUNCTION_KEYS))}"
            )
        handler = t.get("handler")
        if not isinstance(handler, str) or not handler.strip():
            raise UsageError(f"{where}: handler (module:function or a command) is required")
        mb, ms = t.get("memory_mb", 128), t.get("timeout_ms", 60_000)
        for key, v in (("memory_mb", mb), ("timeout_ms", ms)):
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise UsageError(f"{where}: {key} must be a positive integer, got {v!r}")
        f = Function(name, handler, mb << 20, ms)
        if "code" in t:
            src = (path.parent / str(t["code"])).resolve()
            if not src.is_dir():
                raise UsageError(f"{where}: code {src} is not a directory")
            code[name] = src
            f.code_dir = f"{code_root.rstrip('/')}/{name}/{src.name}"
        out.append(f)
    return out, code


async def send_code(nodes: str, code: dict[str, Path], settings: Settings, code_root: str) -> None:
    """Every function's code directory to every node, through the tree."""
    from shoal.fanout import run_async
    from shoal.fanout.transfer import copy_async

    for name, src in code.items():
        dest = f"{code_root.rstrip('/')}/{name}/"
        made = await run_async(nodes, f"mkdir -p {shlex.quote(dest)}", settings=settings)
        report = (
            made
            if not made.ok
            else await copy_async(nodes, src, dest, recursive=True, settings=settings)
        )
        bad = [f"{n.name}: {n.reason}" for n in report if not n.ok]
        if bad:
            raise UsageError(f"code of {name} did not reach every node: {'; '.join(bad[:3])}")


@dataclass
class Running:
    scheduler: Scheduler
    served: Served
    channels: Channels

    async def stop(self) -> None:
        await self.served.server.stop(grace=1.0)
        await self.scheduler.close()
        await self.channels.close()


async def start_scheduler(
    nodes: str | None,
    policy: Policy,
    *,
    settings: Settings,
    listen: str = "127.0.0.1:0",
    node_memory: int = 3072 << 20,
    options: Options | None = None,
    functions: Path | None = None,
    code_root: str = CODE_ROOT,
    reserve_delay_s: float = 0.0,
    fleet_pool: str | None = None,
) -> Running:
    """Start the scheduler and its gRPC server (Scheduler and
    ResourceManager) over the nodes of a node set, or, with nodes None, over
    the fleet controller's running nodes (of ``fleet_pool``, if given); the
    functions' code goes to each node through the tree before it is used."""
    fns, code = load_functions(functions, code_root) if functions is not None else ([], {})
    pool: Pool
    if nodes is None:
        pool = await _fleet_pool(settings, node_memory, fleet_pool, code, code_root)
    else:
        pool = await _static_pool(nodes, settings, node_memory, reserve_delay_s, code, code_root)
    creds = client_credentials(settings)
    channels = Channels(creds, settings.keepalive)
    sched = Scheduler(pool, policy, dial_with(channels.channel), functions=fns, options=options)
    identity = None if settings.insecure else client_identity(settings)
    served = await serve(
        sched, listen, identity=identity, keepalive=settings.keepalive, resource_manager=pool
    )
    await sched.start()
    return Running(sched, served, channels)


async def _static_pool(
    nodes: str,
    settings: Settings,
    memory: int,
    delay: float,
    code: dict[str, Path],
    code_root: str,
) -> StaticPool:
    targets = resolve([nodes], [], settings)
    if not targets.nodes:
        raise UsageError(f"no node in {nodes!r}")
    pool_nodes = []
    for n in targets.nodes:
        a = parse_address(targets.addresses[n], settings.port)
        pool_nodes.append((n, a.host, a.port))
    if code:
        await send_code(nodes, code, settings, code_root)
    return StaticPool(pool_nodes, memory, reserve_delay_s=delay)


async def _fleet_pool(
    settings: Settings,
    memory: int,
    name: str | None,
    code: dict[str, Path],
    code_root: str,
) -> FleetPool:
    from shoal.core.inventory import Inventory
    from shoal.core.tls import client_context

    url = settings.controller_url
    if url.startswith("https://"):
        verify: Any = client_context(client_identity(settings))
    elif settings.insecure:
        verify = False
    else:
        raise UsageError(f"{url} is plain HTTP: pass --insecure to talk to it without TLS")
    inv = Inventory.load(settings.inventory_path(), settings.port)

    def address_of(node: str, known: str | None) -> tuple[str, int]:
        a = inv.addresses.get(node)  # the inventory's, as the fan-out dials it
        if a is None:
            a = parse_address(known or node, settings.port)
        return a.host, a.port

    async def prepare(node: str) -> None:
        if code:
            await send_code(node, code, settings, code_root)

    pool = FleetPool(url, verify=verify, memory=memory, address_of=address_of, pool=name,
                     prepare=prepare)  # fmt: skip
    try:
        await pool.refresh(force=True)
    except BaseException:
        await pool.close()
        raise
    if not pool.running:
        where = f" in pool {name!r}" if name else ""
        log.warning("the controller reports no running node%s yet", where)
    return pool


async def serve_until_stopped(
    nodes: str | None,
    policy: Policy,
    *,
    settings: Settings,
    on_ready: Callable[[Running], None],
    **opts: Any,
) -> dict[str, Any]:
    """Run the scheduler until SIGINT or SIGTERM; then every container is
    removed and every node released. Its address is in $SHOAL_HOME/faas/
    scheduler.addr meanwhile (for `shoal faas invoke`). Returns the usage."""
    from shoal.faas.client import ADDRESS_FILE

    running = await start_scheduler(nodes, policy, settings=settings, **opts)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    addr_file = settings.home / ADDRESS_FILE
    host = str(opts.get("listen", "127.0.0.1:0")).rsplit(":", 1)[0]
    if host in ("", "0.0.0.0", "[::]"):
        host = "127.0.0.1"
    mine = f"{host}:{running.served.port}\n"
    try:
        addr_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = addr_file.with_suffix(".tmp")
        tmp.write_text(mine)
        tmp.replace(addr_file)
        on_ready(running)
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        with contextlib.suppress(OSError):
            if addr_file.read_text() == mine:
                addr_file.unlink()
        usage = running.scheduler.usage()
        await running.stop()
    return usage
