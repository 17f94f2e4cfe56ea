"""The built-in CA: chains verify, SANs name the pod, renewal at 2/3 of the lifetime, real mTLS."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store
from raftcluster_env import NOW

from raftpod_operator import certs
from raftpod_operator.sidecar_client import client_ssl_context

PODS = ["c-0", "c-1", "c-2"]


@pytest.fixture(scope="module")
def material() -> certs.TlsMaterial:
    return certs.plan_tls("c", "ns", pods=PODS, now=NOW, ca={}, peer={}, admin={})


def test_fresh_material_has_every_piece(material: certs.TlsMaterial) -> None:
    assert set(material.peer) == {"ca.crt"} | {f"{p}.{ext}" for p in PODS for ext in ("crt", "key")}
    assert set(material.admin) == {"token", "ca.crt", "tls.crt", "tls.key"}
    assert len(material.admin["token"]) >= 32
    assert "ca.key" not in material.peer and "ca.key" not in material.admin
    assert material.renewed == ("ca", "c-0", "c-1", "c-2", "operator")


def test_peer_chain_verifies_for_the_pod_dns_name(material: certs.TlsMaterial) -> None:
    store = Store([certs.load_cert(material.peer["ca.crt"])])
    leaf = certs.load_cert(material.peer["c-1.crt"])
    verifier = (
        PolicyBuilder()
        .store(store)
        .time(NOW)
        .build_server_verifier(x509.DNSName("c-1.c-peers.ns.svc"))
    )
    chain = verifier.verify(leaf, [])
    assert chain[-1] == store_ca(material)
    with pytest.raises(x509.verification.VerificationError):
        verifier.verify(certs.load_cert(material.peer["c-2.crt"]), [])


def store_ca(material: certs.TlsMaterial) -> x509.Certificate:
    return certs.load_cert(material.ca["ca.crt"])


def test_san_contents(material: certs.TlsMaterial) -> None:
    leaf = certs.load_cert(material.peer["c-0.crt"])
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "c-0.c-peers.ns.svc" in san.get_values_for_type(x509.DNSName)
    assert "c-0.c-peers.ns.svc.cluster.local" in san.get_values_for_type(x509.DNSName)
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == ["raftpod://node/c-0"]
    client = certs.load_cert(material.admin["tls.crt"])
    client_san = client.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert client_san.get_values_for_type(x509.UniformResourceIdentifier) == ["raftpod://operator"]
    client.verify_directly_issued_by(store_ca(material))


def test_unchanged_inputs_renew_nothing(material: certs.TlsMaterial) -> None:
    again = certs.plan_tls(
        "c",
        "ns",
        pods=PODS,
        now=NOW + dt.timedelta(days=10),
        ca=material.ca,
        peer=material.peer,
        admin=material.admin,
    )
    assert again.renewed == ()
    assert (again.ca, again.peer, again.admin) == (material.ca, material.peer, material.admin)


def test_renewal_at_two_thirds_of_the_lifetime(material: certs.TlsMaterial) -> None:
    leaf = material.peer["c-0.crt"]
    cert = certs.load_cert(leaf)
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    due_at = start + (end - start) * 2 / 3
    assert not certs.renewal_due(leaf, due_at - dt.timedelta(seconds=1))
    assert certs.renewal_due(leaf, due_at)
    later = certs.plan_tls(
        "c",
        "ns",
        pods=PODS,
        now=due_at,
        ca=material.ca,
        peer=material.peer,
        admin=material.admin,
    )
    assert later.renewed == ("c-0", "c-1", "c-2", "operator")
    assert later.peer["c-0.crt"] != leaf
    assert later.ca == material.ca


def test_renewals_due_is_pure_and_sorted(material: certs.TlsMaterial) -> None:
    have = {"c-0": material.peer["c-0.crt"]}
    assert certs.renewals_due(have, ["c-3", "c-0", "c-1"], NOW) == ["c-1", "c-3"]
    assert certs.renewals_due({"x": "not a pem"}, ["x"], NOW) == ["x"]


def test_scaling_adds_and_drops_pod_certificates(material: certs.TlsMaterial) -> None:
    grown = certs.plan_tls(
        "c",
        "ns",
        pods=[*PODS, "c-3"],
        now=NOW,
        ca=material.ca,
        peer=material.peer,
        admin=material.admin,
    )
    assert grown.renewed == ("c-3",)
    shrunk = certs.plan_tls(
        "c", "ns", pods=["c-0"], now=NOW, ca=grown.ca, peer=grown.peer, admin=grown.admin
    )
    assert "c-3.crt" not in shrunk.peer and "c-1.key" not in shrunk.peer


def test_ca_renewal_reissues_leaves_and_keeps_the_old_ca_in_the_bundle(
    material: certs.TlsMaterial,
) -> None:
    ca_cert = store_ca(material)
    start, end = ca_cert.not_valid_before_utc, ca_cert.not_valid_after_utc
    at = start + (end - start) * 0.7
    rotated = certs.plan_tls(
        "c", "ns", pods=PODS, now=at, ca=material.ca, peer=material.peer, admin=material.admin
    )
    assert rotated.renewed[0] == "ca"
    assert rotated.ca["ca.key"] != material.ca["ca.key"]
    assert material.ca["ca.crt"] in rotated.peer["ca.crt"]  # old CA still trusted
    assert rotated.peer["ca.crt"].count("BEGIN CERTIFICATE") == 2


async def test_real_mtls_handshake_between_a_peer_and_the_operator(
    material: certs.TlsMaterial, tmp_path: Path
) -> None:
    """A TLS server with c-0's certificate that requires a client certificate from the CA."""
    (tmp_path / "c-0.crt").write_text(material.peer["c-0.crt"])
    (tmp_path / "c-0.key").write_text(material.peer["c-0.key"])
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cadata=material.peer["ca.crt"])
    server_ctx.load_cert_chain(tmp_path / "c-0.crt", tmp_path / "c-0.key")
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    seen: asyncio.Future[dict[str, object]] = asyncio.get_running_loop().create_future()

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.set_result(writer.get_extra_info("peercert"))
        writer.write(b"ok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(on_client, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    try:
        client_ctx = client_ssl_context(
            material.admin["ca.crt"], material.admin["tls.crt"], material.admin["tls.key"]
        )
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client_ctx, server_hostname="c-0.c-peers.ns.svc"
        )
        assert await asyncio.wait_for(reader.read(2), 5) == b"ok"
        writer.close()
        peer = await asyncio.wait_for(seen, 5)
        assert ("URI", "raftpod://operator") in peer["subjectAltName"]  # type: ignore[operator]
        with pytest.raises(ssl.SSLCertVerificationError):
            await asyncio.open_connection(
                "127.0.0.1", port, ssl=client_ctx, server_hostname="c-1.c-peers.ns.svc"
            )
    finally:
        server.close()
        await server.wait_closed()
