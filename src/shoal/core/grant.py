"""Signed work: an operator's grant travels with a request through the tree.

TLS proves who the neighbour on a link is; relays are nodes, so that is not
enough to run a command as root. The client signs, per root of its plan, a
Grant (the root's subtree, the request body, a time); every agent checks it
before it runs or writes anything (``Verifier.check``). A node can forward a
grant but not make one: it holds no commanding certificate.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from shoal.core import tls
from shoal.core.wire import pb
from shoal.errors import GrantError as GrantError  # re-exported
from shoal.errors import TLSError

WINDOW = 300.0  # seconds a grant is fresh either side of its time (clock skew)


def body_of(msg: Any) -> bytes:
    """The signed part of a request: the message with its tree and grant cleared."""
    body = type(msg)()
    body.CopyFrom(msg)
    body.ClearField("signed")
    if body.DESCRIPTOR.fields_by_name.get("tree") is not None:
        body.ClearField("tree")
    return bytes(body.SerializeToString(deterministic=True))


class Signer:
    """Signs grants with an operator's (or the controller's) key."""

    def __init__(self, ident: tls.Identity) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        _, cert, key_pem = ident.read()
        try:
            key = serialization.load_pem_private_key(key_pem, None)
        except ValueError as e:
            raise TLSError(f"{ident.key} is not a readable private key: {e}") from e
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise TLSError(f"{ident.key} is not an EC key")
        self._key = key
        self.certificate = cert

    def sign(self, root: pb.Subtree, body: bytes) -> pb.Signed:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec

        grant = pb.Grant(issued_ns=time.time_ns(), root=root, body=body).SerializeToString()
        sig = self._key.sign(grant, ec.ECDSA(hashes.SHA256()))
        return pb.Signed(grant=grant, signature=sig, certificate=self.certificate)


@dataclass(frozen=True)
class _Signer:
    name: str
    role: str
    key: Any
    not_before: float
    not_after: float


class Verifier:
    """Checks grants against the cluster CA; signers' certificates are cached."""

    def __init__(self, ca_pem: bytes, window: float = WINDOW) -> None:
        from cryptography import x509

        self._ca = x509.load_pem_x509_certificate(ca_pem)
        self.window = window
        self._known: dict[bytes, _Signer] = {}

    def _signer(self, pem: bytes) -> _Signer:
        s = self._known.get(pem)
        if s is None:
            s = self._known[pem] = self._load(pem)
            if len(self._known) > 256:  # a handful of operators; never unbounded
                self._known.pop(next(iter(self._known)))
        now = time.time()
        if not s.not_before <= now <= s.not_after:
            raise GrantError(f"the signer's certificate ({s.name}) is not valid now")
        return s

    def _load(self, pem: bytes) -> _Signer:
        from cryptography import x509
        from cryptography.exceptions import InvalidSignature
        from cryptography.x509.oid import NameOID

        try:
            cert = x509.load_pem_x509_certificate(pem)
            cert.verify_directly_issued_by(self._ca)
        except (ValueError, TypeError, InvalidSignature) as e:
            raise GrantError("the signer's certificate is not from the cluster CA") from e
        cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        name = str(cns[0].value) if cns else "?"
        return _Signer(
            name,
            tls.role_of_subject(cert.subject.rfc4514_string()),
            cert.public_key(),
            cert.not_valid_before_utc.timestamp(),
            cert.not_valid_after_utc.timestamp(),
        )

    def check(self, signed: pb.Signed, body: bytes, tree: pb.Subtree, *, fresh: bool) -> str:
        """The signer's name when ``signed`` allows serving ``tree`` with this
        body; raises GrantError otherwise. ``fresh``: the grant's time must be
        within the window (false only when attaching to work already checked)."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from google.protobuf.message import DecodeError

        if not signed.grant:
            raise GrantError("the request carries no operator's grant")
        s = self._signer(signed.certificate)
        if s.role not in tls.COMMANDERS:
            raise GrantError(f"{s.name} is a {s.role} certificate: it may not start work")
        try:
            s.key.verify(signed.signature, signed.grant, ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, ValueError, TypeError) as e:
            raise GrantError(f"the grant does not carry {s.name}'s signature") from e
        grant = pb.Grant()
        try:
            grant.ParseFromString(signed.grant)
        except DecodeError as e:
            raise GrantError("the grant is garbled") from e
        if grant.body != body:
            raise GrantError(f"the request is not the one {s.name} signed")
        if fresh and abs(time.time_ns() - grant.issued_ns) > self.window * 1e9:
            raise GrantError(
                f"the grant is stale or from the future (more than {self.window:g} s off;"
                " are the clocks in sync?)"
            )
        if not _within(tree, grant.root):
            raise GrantError(f"{s.name} did not ask for {tree.name} to serve this subtree")
        return s.name


def _within(tree: pb.Subtree, root: pb.Subtree) -> bool:
    """tree is root or one of its subtrees (names are unique in a plan)."""
    stack = [root]
    while stack:
        t = stack.pop()
        if t.name == tree.name:
            return bool(t == tree)
        stack.extend(t.children)
    return False
