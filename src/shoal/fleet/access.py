"""Who is calling the controller, and what a certificate's role lets it do.

Behind mutual TLS the caller is the verified client certificate of the
connection: its CN names it, its role (``shoal.core.tls``: operator,
controller, node) says what it may do. Least privilege:

- a node may register and heartbeat as its own name, and nothing else: it
  cannot read the registry (other nodes' facts and addresses), the events
  or the jobs, and it cannot change the fleet or start work;
- an operator may do everything; a controller certificate may read;
- ``/healthz`` and ``/metrics`` answer any certificate of the cluster CA.

With ``--insecure`` nothing is checked (the caller may name itself in
X-Shoal-Name): the controller says so loudly at start.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException, Request

from shoal.core import tls


@dataclass(frozen=True)
class Peer:
    name: str
    role: str


# the verified peer by (host, port) of its TLS connection, filled by the server protocol
PEERS: dict[tuple[str, int], Peer] = {}

READERS = tls.COMMANDERS  # operator, controller
OPERATORS = frozenset({tls.OPERATOR})


def peer_of_cert(cert: dict[str, Any]) -> Peer | None:
    """The CN and role of a certificate as ``getpeercert()`` returns it."""
    cn = None
    for rdn in cert.get("subject", ()):
        for k, v in rdn:
            if k == "commonName":
                cn = str(v)
    return Peer(cn, tls.role_of_peercert(cert)) if cn else None


def sender(insecure: bool, client: Any, claimed: str | None) -> Peer | None:
    """Who sent a request: the certificate verified on its connection (``client``
    is its (host, port)), or with --insecure whatever X-Shoal-Name claims."""
    if insecure:
        return Peer(claimed or "insecure", tls.OPERATOR)
    return PEERS.get((client[0], client[1])) if client else None


def acts_as(insecure: bool, who: Peer | None, name: str) -> bool:
    """A node may register and heartbeat only as its own certificate's name."""
    return insecure or (who is not None and who.name == name)


class Access:
    """The checks the routes call; each returns the caller or raises 401/403."""

    def __init__(self, insecure: bool) -> None:
        self.insecure = insecure

    def caller(self, request: Request) -> Peer:
        c = request.client
        who = sender(
            self.insecure, (c.host, c.port) if c else None, request.headers.get("x-shoal-name")
        )
        if who is None:
            raise HTTPException(401, "no verified client certificate")
        return who

    def as_node(self, request: Request, name: str) -> Peer:
        who = self.caller(request)
        if not acts_as(self.insecure, who, name):
            raise HTTPException(403, f"certificate {who.name!r} may not act as node {name!r}")
        return who

    def reader(self, request: Request) -> Peer:
        who = self.caller(request)
        if who.role not in READERS:
            raise HTTPException(
                403,
                f"certificate {who.name!r} has role {who.role}: reading the fleet needs"
                " an operator certificate (a node may only register and heartbeat)",
            )
        return who

    def operator(self, request: Request) -> Peer:
        who = self.caller(request)
        if who.role not in OPERATORS:
            raise HTTPException(
                403,
                f"certificate {who.name!r} has role {who.role}: changing the fleet or"
                " starting work needs an operator certificate"
                " (`shoal ca issue NAME --role operator`)",
            )
        return who
