"""The agent's door for work: a request runs only under an operator's grant.

TLS already proved the neighbour is of the cluster CA; the gate checks that
the work itself was signed by an operator (or the controller) for this node
(see core/grant.py). A refusal is logged with the peer and answered with
PERMISSION_DENIED, which the caller reports as REFUSED.
"""

from __future__ import annotations

import logging
from typing import Any

import grpc

from shoal.core import tls
from shoal.core.grant import GrantError, Verifier
from shoal.core.wire import pb

log = logging.getLogger("shoal.agent")


class Gate:
    def __init__(self, name: str, identity: tls.Identity | None) -> None:
        self.name = name
        # None: --insecure, where nothing is authenticated (announced at start)
        self.verifier = Verifier(identity.read()[0]) if identity is not None else None

    async def admit(
        self,
        context: grpc.aio.ServicerContext[Any, Any],
        signed: pb.Signed,
        body: bytes,
        tree: pb.Subtree,
        *,
        fresh: bool = True,
    ) -> str:
        """Who signed the work; aborts the call when the grant does not hold."""
        if self.verifier is None:
            return "anyone (insecure)"
        if tree.name != self.name:
            why = f"this agent is {self.name}, not {tree.name}"
        else:
            try:
                return self.verifier.check(signed, body, tree, fresh=fresh)
            except GrantError as e:
                why = str(e)
        peer = tls.peer_name(dict(context.auth_context())) or context.peer()
        log.warning("%s: refused a request from %s: %s", self.name, peer, why)
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, f"{self.name} refused: {why}")
        raise AssertionError("unreachable: abort raises")
