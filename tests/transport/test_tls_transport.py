"""Mutual TLS between transports: CA checks, id-to-certificate binding, live rotation."""

from __future__ import annotations

from pathlib import Path

from raftpod_sidecar.transport.peers import PeerTransport
from raftpod_sidecar.transport.tls import TlsContexts, cert_names_node

from .certs import Authority, make_ca, write_node_files
from .harness import Inbox, addr, app, poll, start_node


def _contexts(
    tmp: Path, ca: Authority, cert_id: str, trust: tuple[Authority, ...] = ()
) -> TlsContexts:
    files = write_node_files(
        tmp / cert_id, ca, dns=(f"{cert_id}.peers.ns.svc",), node_uri=cert_id, trust=trust
    )
    return TlsContexts(files)


async def _node(
    tmp: Path, ca: Authority, node_id: str, **kw: object
) -> tuple[PeerTransport, Inbox]:
    inbox = Inbox()
    cert_id = str(kw.pop("cert_id", node_id))
    trust = kw.pop("trust", ())
    assert isinstance(trust, tuple)
    t = await start_node(node_id, inbox, tls=_contexts(tmp, ca, cert_id, trust))
    return t, inbox


async def test_mtls_peers_exchange_messages(tmp_path: Path) -> None:
    ca = make_ca()
    a, inbox_a = await _node(tmp_path, ca, "a")
    b, inbox_b = await _node(tmp_path, ca, "b")
    try:
        a.update_peers({"b": addr(b)})
        b.update_peers({"a": addr(a)})
        a.send([app("a", "b", k) for k in range(5)])
        b.send([app("b", "a", 0)])
        await inbox_b.until(lambda: [m.index for m in inbox_b.messages] == list(range(5)))
        await inbox_a.until(lambda: len(inbox_a.messages) == 1)
        assert a.counters.handshake_failures == b.counters.handshake_failures == 0
    finally:
        await a.stop()
        await b.stop()


async def test_certificate_from_another_ca_is_refused(tmp_path: Path) -> None:
    ca, other = make_ca("good"), make_ca("other")
    b, inbox_b = await _node(tmp_path, ca, "b")
    a, _ = await _node(tmp_path, ca, "a")
    # c trusts both CAs (so only b's check can stop it) but holds a certificate from `other`.
    c, inbox_c = await _node(tmp_path, other, "c", trust=(ca, other))
    try:
        c.update_peers({"b": addr(b)})
        a.update_peers({"b": addr(b)})
        await inbox_c.until(lambda: "b" in inbox_c.unreachable)
        await poll(lambda: b.counters.handshake_failures >= 1)
        a.send([app("a", "b", 1)])
        await inbox_b.until(lambda: len(inbox_b.messages) == 1)
        assert all(m.frm == "a" for m in inbox_b.messages)
        assert c.counters.frames_out == 0
    finally:
        for t in (a, b, c):
            await t.stop()


async def test_claiming_an_id_the_certificate_does_not_name_is_refused(tmp_path: Path) -> None:
    ca = make_ca()
    b, inbox_b = await _node(tmp_path, ca, "b")
    # An impostor with a valid certificate for "c" claims to be "a".
    impostor, inbox_i = await _node(tmp_path, ca, "a", cert_id="c")
    try:
        impostor.update_peers({"b": addr(b)})
        await inbox_i.until(lambda: "b" in inbox_i.unreachable)
        await poll(lambda: b.counters.handshake_failures >= 1)
        impostor.send([app("a", "b", 1)])
        assert inbox_b.messages == []
        assert b.counters.frames_in == 0
    finally:
        await impostor.stop()
        await b.stop()


async def test_dialer_refuses_a_listener_whose_certificate_names_someone_else(
    tmp_path: Path,
) -> None:
    ca = make_ca()
    a, inbox_a = await _node(tmp_path, ca, "a")
    # Listens as "b" but can only prove it is "c".
    fake_b, inbox_fake = await _node(tmp_path, ca, "b", cert_id="c")
    try:
        a.update_peers({"b": addr(fake_b)})
        a.send([app("a", "b", 1)])
        await inbox_a.until(lambda: "b" in inbox_a.unreachable)
        assert a.counters.dial_failures >= 1
        assert a.counters.frames_out == 0
        await poll(lambda: fake_b.counters.handshake_failures >= 1)
        assert inbox_fake.messages == []
    finally:
        await a.stop()
        await fake_b.stop()


async def test_plain_tcp_to_a_tls_port_is_a_handshake_failure(tmp_path: Path) -> None:
    ca = make_ca()
    b, _ = await _node(tmp_path, ca, "b")
    plain = await start_node("a", Inbox())
    try:
        plain.update_peers({"b": addr(b)})
        await poll(lambda: b.counters.handshake_failures >= 1)
        assert b.counters.frames_in == 0
    finally:
        await plain.stop()
        await b.stop()


async def test_rotated_certificates_are_used_without_restart(tmp_path: Path) -> None:
    old_ca, new_ca = make_ca("old"), make_ca("new")
    a, inbox_a = await _node(tmp_path, old_ca, "a")
    b, _ = await _node(tmp_path, old_ca, "b")
    c, inbox_c = await _node(tmp_path, new_ca, "c", trust=(old_ca, new_ca))
    try:
        b.update_peers({"a": addr(a)})
        b.send([app("b", "a", 0)])
        await inbox_a.until(lambda: len(inbox_a.messages) == 1)
        c.update_peers({"a": addr(a)})
        await inbox_c.until(lambda: "a" in inbox_c.unreachable)  # a trusts only the old CA
        assert a.tls is not None and a.tls.reloads == 0
        # Rotate a's files in place: a certificate from the new CA, a bundle trusting both.
        write_node_files(tmp_path / "a", new_ca, node_uri="a", trust=(old_ca, new_ca))
        c.send([app("c", "a", 1)])
        await inbox_a.until(lambda: any(m.frm == "c" for m in inbox_a.messages))
        assert a.tls.reloads == 1
        b.send([app("b", "a", 2)])  # the live connection from b is untouched
        await inbox_a.until(lambda: inbox_a.messages[-1].index == 2)
        assert b.counters.reconnects == 0
    finally:
        for t in (a, b, c):
            await t.stop()


def test_cert_names_node_matches_dns_or_uri_san_exactly() -> None:
    cert = {"subjectAltName": (("DNS", "n1"), ("URI", "raftpod://node/n2"), ("DNS", "x.svc"))}
    assert cert_names_node(cert, "n1")
    assert cert_names_node(cert, "n2")
    assert cert_names_node(cert, "x.svc")
    assert not cert_names_node(cert, "n3")
    assert not cert_names_node(cert, "N1")
    assert not cert_names_node({"subjectAltName": (("URI", "n4"),)}, "n4")
    assert not cert_names_node(None, "n1")
    assert not cert_names_node({}, "n1")


def test_half_written_rotation_keeps_previous_certificates(tmp_path: Path) -> None:
    ca = make_ca()
    ctx = _contexts(tmp_path, ca, "a")
    first = ctx.server_context()
    Path(ctx.files.cert).write_bytes(b"-----BEGIN CERTIFICATE-----\ntruncated")
    assert ctx.server_context() is first
    assert ctx.reloads == 0
