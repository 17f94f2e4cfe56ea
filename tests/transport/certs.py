"""Test-only certificate factory: a CA and per-node certificates as PEM files."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from raftpod_sidecar.transport.tls import NODE_URI_PREFIX, TlsFiles


class Authority(NamedTuple):
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _validity(builder: x509.CertificateBuilder) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return builder.not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(
        now + datetime.timedelta(days=1)
    )


def make_ca(common_name: str = "raftpod test CA") -> Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    return Authority(key, _validity(builder).sign(key, hashes.SHA256()))


def issue(ca: Authority, dns: tuple[str, ...] = (), node_uri: str = "") -> tuple[bytes, bytes]:
    """(cert PEM, key PEM) for a leaf with the given DNS SANs and optional node URI SAN."""
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    if node_uri:
        sans.append(x509.UniformResourceIdentifier(NODE_URI_PREFIX + node_uri))
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(dns[0] if dns else node_uri or "peer"))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
    )
    cert = _validity(builder).sign(ca.key, hashes.SHA256())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _replace(path: Path, data: bytes) -> None:
    """Write via rename, as a rotated Kubernetes secret appears (new inode)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def write_node_files(
    directory: Path,
    ca: Authority,
    *,
    dns: tuple[str, ...] = (),
    node_uri: str = "",
    trust: tuple[Authority, ...] = (),
) -> TlsFiles:
    """Write (or overwrite) cert.pem/key.pem/ca.pem in ``directory``; CA bundle = trust or ca."""
    directory.mkdir(parents=True, exist_ok=True)
    cert_pem, key_pem = issue(ca, dns, node_uri)
    files = TlsFiles(
        str(directory / "cert.pem"), str(directory / "key.pem"), str(directory / "ca.pem")
    )
    _replace(Path(files.key), key_pem)
    _replace(Path(files.cert), cert_pem)
    _replace(Path(files.ca), b"".join(a.pem() for a in (trust or (ca,))))
    return files
