"""The operator's built-in CA: peer certificates, the operator's admin client identity, renewal.

Peers authenticate each other by certificate (SAN = the pod's stable DNS names
plus the URI ``raftpod://node/<pod-name>``); the operator calls the admin API
with its own client certificate (URI ``raftpod://operator``) and a bearer token.
Deciding *what* to renew is pure (`renewals_due`): a certificate is renewed once
two thirds of its lifetime have passed, so a missed timer still leaves a third.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_LIFETIME = dt.timedelta(days=5 * 365)
LEAF_LIFETIME = dt.timedelta(days=90)
RENEW_FRACTION = 2 / 3
OPERATOR_URI = "raftpod://operator"
CA_CERT = "ca.crt"
CA_KEY = "ca.key"
CLIENT_CERT = "tls.crt"
CLIENT_KEY = "tls.key"
TOKEN = "token"


@dataclass(frozen=True)
class KeyPair:
    """A PEM certificate and its PEM private key."""

    cert_pem: str
    key_pem: str


def node_uri(pod: str) -> str:
    return f"raftpod://node/{pod}"


def pod_dns_names(pod: str, cluster: str, namespace: str) -> list[str]:
    """Every name a peer may dial ``pod`` by, most specific first."""
    peers = f"{cluster}-peers"
    return [
        f"{pod}.{peers}.{namespace}.svc.cluster.local",
        f"{pod}.{peers}.{namespace}.svc",
        f"{pod}.{peers}.{namespace}",
        f"{pod}.{peers}",
    ]


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def load_cert(pem: str) -> x509.Certificate:
    """The first certificate in a PEM text."""
    return x509.load_pem_x509_certificate(pem.encode())


def new_ca(cluster: str, now: dt.datetime, lifetime: dt.timedelta = CA_LIFETIME) -> KeyPair:
    """A self-signed CA for one cluster."""
    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"raftpod CA {cluster}")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + lifetime)
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    return KeyPair(_cert_pem(cert), _key_pem(key))


def _issue(
    ca: KeyPair,
    common_name: str,
    *,
    sans: list[x509.GeneralName],
    usages: list[x509.ObjectIdentifier],
    now: dt.datetime,
    lifetime: dt.timedelta,
) -> KeyPair:
    ca_cert = load_cert(ca.cert_pem)
    ca_key = serialization.load_pem_private_key(ca.key_pem.encode(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = _new_key()
    not_after = min(now + lifetime, ca_cert.not_valid_after_utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return KeyPair(_cert_pem(cert), _key_pem(key))


def issue_peer(
    ca: KeyPair,
    pod: str,
    *,
    cluster: str,
    namespace: str,
    now: dt.datetime,
    lifetime: dt.timedelta = LEAF_LIFETIME,
) -> KeyPair:
    """A peer certificate for ``pod``: server and client auth for mTLS between peers."""
    sans: list[x509.GeneralName] = [
        x509.DNSName(name) for name in pod_dns_names(pod, cluster, namespace)
    ]
    sans.append(x509.UniformResourceIdentifier(node_uri(pod)))
    usages = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    return _issue(ca, pod, sans=sans, usages=usages, now=now, lifetime=lifetime)


def issue_operator_client(
    ca: KeyPair, now: dt.datetime, lifetime: dt.timedelta = LEAF_LIFETIME
) -> KeyPair:
    """The operator's client certificate for the admin API."""
    sans: list[x509.GeneralName] = [x509.UniformResourceIdentifier(OPERATOR_URI)]
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
    return _issue(ca, "raftpod-operator", sans=sans, usages=usages, now=now, lifetime=lifetime)


def renewal_due(cert_pem: str, now: dt.datetime, fraction: float = RENEW_FRACTION) -> bool:
    """True once ``fraction`` of the certificate's lifetime has passed (or it is unreadable)."""
    try:
        cert = load_cert(cert_pem)
    except ValueError:
        return True
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    return now >= start + (end - start) * fraction


def renewals_due(certs: Mapping[str, str], wanted: Iterable[str], now: dt.datetime) -> list[str]:
    """Which of ``wanted`` certificates must be (re)issued at ``now``: missing or due, sorted."""
    due = {name for name in wanted if name not in certs or renewal_due(certs[name], now)}
    return sorted(due)


@dataclass(frozen=True)
class TlsMaterial:
    """The string data of the three Secrets the operator keeps per cluster."""

    ca: dict[str, str]  # <cluster>-ca: ca.crt (bundle), ca.key; read only by the operator
    peer: dict[str, str]  # <cluster>-peer-tls: ca.crt, <pod>.crt, <pod>.key
    admin: dict[str, str]  # <cluster>-admin: token, ca.crt, tls.crt, tls.key
    renewed: tuple[str, ...]  # what changed, for events; empty when nothing did


def plan_tls(
    cluster: str,
    namespace: str,
    *,
    pods: Iterable[str],
    now: dt.datetime,
    ca: Mapping[str, str],
    peer: Mapping[str, str],
    admin: Mapping[str, str],
) -> TlsMaterial:
    """Bring the three Secrets' data up to date for ``pods`` at ``now``.

    Missing or due certificates are issued; a renewed CA reissues every leaf and
    the bundle keeps the old CA while it is still valid, so peers that have not
    yet reloaded keep trusting each other. Certificates of pods no longer wanted
    are dropped. Unchanged inputs give back equal data and ``renewed == ()``.
    """
    pod_list = sorted(set(pods))
    renewed: list[str] = []
    ca_pair: KeyPair
    if CA_CERT in ca and CA_KEY in ca and not renewal_due(ca[CA_CERT], now):
        ca_pair = KeyPair(_first_pem(ca[CA_CERT]), ca[CA_KEY])
        bundle = ca[CA_CERT]
        peer_certs = {p: peer[f"{p}.crt"] for p in pod_list if f"{p}.crt" in peer}
        admin_certs = {"operator": admin[CLIENT_CERT]} if CLIENT_CERT in admin else {}
    else:
        ca_pair = new_ca(cluster, now)
        renewed.append("ca")
        bundle = ca_pair.cert_pem + _still_valid(ca.get(CA_CERT, ""), now)
        peer_certs, admin_certs = {}, {}
    new_peer: dict[str, str] = {CA_CERT: bundle}
    for pod in pod_list:
        if pod in renewals_due(peer_certs, [pod], now):
            pair = issue_peer(ca_pair, pod, cluster=cluster, namespace=namespace, now=now)
            renewed.append(pod)
        else:
            pair = KeyPair(peer[f"{pod}.crt"], peer[f"{pod}.key"])
        new_peer[f"{pod}.crt"], new_peer[f"{pod}.key"] = pair.cert_pem, pair.key_pem
    if renewals_due(admin_certs, ["operator"], now):
        client = issue_operator_client(ca_pair, now)
        renewed.append("operator")
    else:
        client = KeyPair(admin[CLIENT_CERT], admin[CLIENT_KEY])
    new_admin = {
        TOKEN: admin.get(TOKEN) or secrets.token_urlsafe(32),
        CA_CERT: bundle,
        CLIENT_CERT: client.cert_pem,
        CLIENT_KEY: client.key_pem,
    }
    new_ca_data = {CA_CERT: bundle, CA_KEY: ca_pair.key_pem}
    return TlsMaterial(new_ca_data, new_peer, new_admin, tuple(renewed))


def admin_token_only(admin: Mapping[str, str]) -> dict[str, str]:
    """The admin Secret's data when TLS is off: only the bearer token."""
    return {TOKEN: admin.get(TOKEN) or secrets.token_urlsafe(32)}


_PEM_END = "-----END CERTIFICATE-----"


def _split_pems(bundle: str) -> list[str]:
    parts = (part.strip() for part in bundle.split(_PEM_END))
    return [f"{part}\n{_PEM_END}\n" for part in parts if part]


def _first_pem(bundle: str) -> str:
    return _split_pems(bundle)[0]


def _still_valid(bundle: str, now: dt.datetime) -> str:
    """The certificates of ``bundle`` not yet expired at ``now``, as PEM."""
    return "".join(pem for pem in _split_pems(bundle) if load_cert(pem).not_valid_after_utc > now)
