"""The client side of the tree: resolve, plan, connect to the roots, relay.

The client is a root without a local part: it hands the roots to the same
relay code the agents use, and every event goes to `on_event` inline (so a
slow terminal slows the tree down instead of queueing output here).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shoal.core import tls
from shoal.core.config import Settings
from shoal.core.grant import Signer, body_of
from shoal.core.inventory import Inventory
from shoal.core.keepalive import Keepalive
from shoal.core.nodeset import select
from shoal.core.wire import pb
from shoal.fanout.plan import plan
from shoal.tree.channels import Channels
from shoal.tree.relay import Relay


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


def client_signer(settings: Settings) -> Signer | None:
    """Signs the work this client sends; None for --insecure."""
    return None if settings.insecure else Signer(client_identity(settings))


async def fan_out(
    task: pb.TaskRequest,
    targets: Targets,
    *,
    width: int,
    credentials: Any | None,
    connect_timeout: float,
    on_event: Callable[[pb.TaskEvent], None],
    signer: Signer | None = None,
    keepalive: Keepalive | None = None,
) -> None:
    """Run `task` (its oneof set; tree is filled per root) on every target.

    With a signer (always, but under --insecure) each root's subtree goes with
    a grant of its own, so an agent checks a grant the size of its root's
    subtree, not the whole plan's."""
    roots = plan([(n, targets.addresses[n]) for n in targets.nodes], width)
    req = pb.TaskRequest()
    req.CopyFrom(task)
    req.connect_timeout = connect_timeout
    req.task_id = uuid.uuid4().hex
    work = []
    body = body_of(req)
    for root in roots:
        r = req
        if signer is not None:
            r = pb.TaskRequest()
            r.CopyFrom(req)
            r.signed.CopyFrom(signer.sign(root, body))
        work.append((r, root))
    chans = Channels(credentials, keepalive)

    async def emit(ev: pb.TaskEvent) -> None:
        on_event(ev)

    try:
        await Relay(chans, emit, deliberate=True).serve_each(work)
    finally:
        await chans.close()
