from pathlib import Path

import pytest
from cryptography import x509

from shoal.core import tls
from shoal.errors import TLSError


def test_ca_and_issued_certificate(tmp_path: Path) -> None:
    tls.init_ca(tmp_path)
    assert (tmp_path / "ca.key").stat().st_mode & 0o777 == 0o600
    ident = tls.issue(tmp_path, "cn7", sans=["127.0.0.1", "cn7.example"])
    cert = x509.load_pem_x509_certificate(ident.cert.read_bytes())
    ca = x509.load_pem_x509_certificate((tmp_path / "ca.crt").read_bytes())
    cert.verify_directly_issued_by(ca)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["cn7", "cn7.example"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert ident.key.stat().st_mode & 0o777 == 0o600


def test_refuses_to_overwrite_ca(tmp_path: Path) -> None:
    tls.init_ca(tmp_path)
    with pytest.raises(TLSError, match="already exists"):
        tls.init_ca(tmp_path)


def test_issue_without_ca(tmp_path: Path) -> None:
    with pytest.raises(TLSError, match="shoal ca init"):
        tls.issue(tmp_path, "cn1")


def test_missing_identity_files_name_the_fix(tmp_path: Path) -> None:
    with pytest.raises(TLSError, match="--insecure"):
        tls.Identity.in_dir(tmp_path, "client").read()


def test_certificates_carry_a_role(tmp_path: Path) -> None:
    import ssl

    tls.init_ca(tmp_path)
    op = tls.issue(tmp_path, "alice", role=tls.OPERATOR)
    node = tls.issue(tmp_path, "cn1")
    for ident, role in ((op, tls.OPERATOR), (node, tls.NODE)):
        cert = x509.load_pem_x509_certificate(ident.cert.read_bytes())
        assert tls.role_of_subject(cert.subject.rfc4514_string()) == role
        decoded = ssl._ssl._test_decode_cert(str(ident.cert))  # type: ignore[attr-defined]
        assert tls.role_of_peercert(decoded) == role
    assert tls.role_of_subject("CN=old") == tls.NODE  # no role: least privilege
    assert tls.peer_role({"x509_common_name": [b"a"], "x509_subject": [b"OU=operator,CN=a"]}) == (
        tls.OPERATOR
    )
    assert tls.peer_role({}) is None
    with pytest.raises(TLSError, match="invalid role"):
        tls.issue(tmp_path, "cn2", role="root")
