"""The client side of the tree: resolve, plan, connect to the roots, relay.

The client is a root without a local part: it hands the roots to the same
relay code the agents use, and every event goes to `on_event` inline (so a
slow terminal slows the tree down instead of queueing output here).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shoal.agent.relay import Channels, relay_children
from shoal.core import tls
from shoal.core.config import Settings
from shoal.core.inventory import Inventory
from shoal.core.nodeset import select
from shoal.core.wire import pb
from shoal.fanout.plan import plan


@dataclass
class Targets:
    nodes: list[str]  # node-list order
    addresses: dict[str, str]  # name -> host:port


def resolve(include: list[str], exclude: list[str], settings: Settings) -> Targets:
    """Node sets -> ordered names and addresses. Raises NodeSetError (exit 2)
    before anything is contacted."""
    inv = Inventory.load(settings.inventory_path(), settings.port)
    nodes = select(include, exclude, inv)
    return Targets(nodes, {n: str(inv.address(n)) for n in nodes})


def client_identity(settings: Settings) -> tls.Identity:
    d = settings.tls_dir
    return tls.Identity(
        settings.ca_cert or d / "ca.crt",
        settings.cert or d / f"{tls.CLIENT_NAME}.crt",
        settings.key or d / f"{tls.CLIENT_NAME}.key",
    )


def client_credentials(settings: Settings) -> Any | None:
    """None for --insecure; a missing certificate raises TLSError (exit 5)."""
    if settings.insecure:
        return None
    return tls.channel_credentials(client_identity(settings))


async def fan_out(
    task: pb.TaskRequest,
    targets: Targets,
    *,
    width: int,
    credentials: Any | None,
    connect_timeout: float,
    on_event: Callable[[pb.TaskEvent], None],
) -> None:
    """Run `task` (its oneof set; tree is filled per root) on every target."""
    roots = plan([(n, targets.addresses[n]) for n in targets.nodes], width)
    req = pb.TaskRequest()
    req.CopyFrom(task)
    req.connect_timeout = connect_timeout
    chans = Channels(credentials)

    async def emit(ev: pb.TaskEvent) -> None:
        on_event(ev)

    try:
        await relay_children(req, roots, chans, emit)
    finally:
        await chans.close()
