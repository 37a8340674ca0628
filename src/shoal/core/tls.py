"""The cluster CA and mutual-TLS credentials for every shoal peer.

Layout under a TLS directory (default $SHOAL_HOME/tls):
    ca.crt, ca.key            the cluster CA (ca.key mode 0600)
    NAME.crt, NAME.key        identities issued by `shoal ca issue NAME`

Every certificate is ECDSA P-256 and good for both server and client auth:
agents relay to their children with their own certificate. gRPC verifies
the peer's chain against ca.crt and, on the dialing side, the name in the
certificate against the node name (not the address), so a node moved to a
new address keeps working and a certificate for cn1 cannot answer as cn2.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shoal.errors import TLSError

CA_NAME = "shoal cluster CA"
CLIENT_NAME = "client"

# A certificate's role is its subject's organizational unit. Only operators
# (and the controller, for its jobs) may start work or change the fleet; a
# node may serve, relay and report about itself. No role means node.
OPERATOR, CONTROLLER, NODE = "operator", "controller", "node"
ROLES = (OPERATOR, CONTROLLER, NODE)
COMMANDERS = frozenset({OPERATOR, CONTROLLER})


@dataclass(frozen=True)
class Identity:
    """Paths to a CA certificate and one issued key pair."""

    ca_cert: Path
    cert: Path
    key: Path

    def read(self) -> tuple[bytes, bytes, bytes]:
        out = []
        for what, p in (
            ("CA certificate", self.ca_cert),
            ("certificate", self.cert),
            ("key", self.key),
        ):
            try:
                out.append(p.read_bytes())
            except FileNotFoundError as e:
                raise TLSError(
                    f"{what} {p} not found (create one with `shoal ca init` / `shoal ca issue`,"
                    " or pass --insecure to run without TLS)"
                ) from e
            except OSError as e:
                raise TLSError(f"cannot read {what} {p}: {e.strerror}") from e
        return out[0], out[1], out[2]

    @classmethod
    def in_dir(cls, tls_dir: Path, name: str) -> Identity:
        return cls(tls_dir / "ca.crt", tls_dir / f"{name}.crt", tls_dir / f"{name}.key")


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _write_public(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def init_ca(tls_dir: Path, *, force: bool = False, days: int = 3650) -> Path:
    """Create the cluster CA in tls_dir; refuse to overwrite one unless forced."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    ca_crt = tls_dir / "ca.crt"
    if ca_crt.exists() and not force:
        raise TLSError(f"a CA already exists at {ca_crt} (use --force to replace it)")
    tls_dir.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_private(
        tls_dir / "ca.key",
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    _write_public(ca_crt, cert.public_bytes(serialization.Encoding.PEM))
    return ca_crt


def issue(
    tls_dir: Path,
    name: str,
    *,
    sans: list[str] | None = None,
    days: int = 825,
    out_dir: Path | None = None,
    role: str = NODE,
) -> Identity:
    """Issue NAME.crt/NAME.key signed by the CA in tls_dir.

    The certificate names NAME plus any extra DNS names or IP addresses in
    sans, carries ``role`` (operator, controller or node) and is valid for
    both server and client authentication.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    if not name or "/" in name or name.startswith("."):
        raise TLSError(f"invalid certificate name {name!r}")
    if role not in ROLES:
        raise TLSError(f"invalid role {role!r}: one of {', '.join(ROLES)}")
    ca_key_path, ca_crt_path = tls_dir / "ca.key", tls_dir / "ca.crt"
    try:
        ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), None)
        ca_cert = x509.load_pem_x509_certificate(ca_crt_path.read_bytes())
    except FileNotFoundError as e:
        raise TLSError(f"no CA in {tls_dir}: run `shoal ca init` first") from e
    except ValueError as e:
        raise TLSError(f"the CA in {tls_dir} is unreadable: {e}") from e
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise TLSError(f"{ca_key_path} is not an EC key")
    key = ec.generate_private_key(ec.SECP256R1())
    alt: list[x509.GeneralName] = [x509.DNSName(name)]
    for s in sans or []:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(s)))
        except ValueError:
            alt.append(x509.DNSName(s))
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.COMMON_NAME, name),
                    x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role),
                ]
            )
        )
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    dest = out_dir or tls_dir
    dest.mkdir(parents=True, exist_ok=True)
    ident = Identity(ca_crt_path, dest / f"{name}.crt", dest / f"{name}.key")
    _write_private(
        ident.key,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    _write_public(ident.cert, cert.public_bytes(serialization.Encoding.PEM))
    return ident


def server_credentials(ident: Identity) -> Any:
    """gRPC server credentials that require a client certificate signed by the CA."""
    import grpc

    ca, cert, key = ident.read()
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=ca, require_client_auth=True
    )


def channel_credentials(ident: Identity) -> Any:
    """gRPC channel credentials presenting ident and trusting only the cluster CA."""
    import grpc

    ca, cert, key = ident.read()
    return grpc.ssl_channel_credentials(
        root_certificates=ca, private_key=key, certificate_chain=cert
    )


def client_context(ident: Identity) -> Any:
    """An ssl context for HTTPS to a shoal service: presents ident, trusts only
    the cluster CA. A missing file raises TLSError."""
    import ssl

    ident.read()
    ctx = ssl.create_default_context(cafile=str(ident.ca_cert))
    ctx.load_cert_chain(str(ident.cert), str(ident.key))
    return ctx


def peer_name(auth_context: dict[str, list[bytes]]) -> str | None:
    """The verified common name of a gRPC peer, or None when it presented none."""
    names = auth_context.get("x509_common_name") or []
    return names[0].decode() if names else None


def role_of_subject(subject: str) -> str:
    """The role in an RFC 4514 subject string ("OU=operator,CN=client"), as gRPC
    reports it in the auth context's x509_subject."""
    for part in subject.split(","):
        key, _, value = part.strip().partition("=")
        if key.strip().upper() == "OU" and value in ROLES:
            return value
    return NODE


def peer_role(auth_context: dict[str, list[bytes]]) -> str | None:
    """The role of a verified gRPC peer, or None when it presented no certificate."""
    if not auth_context.get("x509_common_name"):
        return None
    subjects = auth_context.get("x509_subject") or [b""]
    return role_of_subject(subjects[0].decode(errors="replace"))


def role_of_peercert(cert: dict[str, Any]) -> str:
    """The role in a certificate as ``ssl.SSLSocket.getpeercert()`` returns it."""
    for rdn in cert.get("subject", ()):
        for k, v in rdn:
            if k == "organizationalUnitName" and v in ROLES:
                return str(v)
    return NODE
