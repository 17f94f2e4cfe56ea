"""Mutual TLS for peer connections, with certificate files re-read when they change.

Both sides present a certificate signed by the cluster CA (TLS 1.2 or newer)
and verify the other's. Host names are not checked by OpenSSL; instead the
transport checks that the certificate names the node id claimed in the hello:

    a certificate identifies node ``ID`` if its subjectAltName holds
    ``DNS:ID`` or ``URI:raftpod://node/ID`` (exact, case-sensitive match).

The operator issues per-pod certificates with the pod DNS names and the URI
form of the node id as SANs. Every new connection asks ``TlsContexts`` for a
context; it stats the three files and rebuilds the contexts when any changed
(rotation without restart; live connections keep their session).
"""

from __future__ import annotations

import logging
import os
import ssl
from typing import Any, NamedTuple

log = logging.getLogger(__name__)

NODE_URI_PREFIX = "raftpod://node/"


class TlsFiles(NamedTuple):
    """PEM files: this node's certificate chain and key, and the CA bundle to trust."""

    cert: str
    key: str
    ca: str


def _fingerprint(files: TlsFiles) -> tuple[tuple[int, int, int], ...]:
    out = []
    for path in files:
        st = os.stat(path)
        out.append((st.st_mtime_ns, st.st_size, st.st_ino))
    return tuple(out)


def _build(files: TlsFiles, server_side: bool) -> ssl.SSLContext:
    purpose = ssl.Purpose.CLIENT_AUTH if server_side else ssl.Purpose.SERVER_AUTH
    ctx = ssl.create_default_context(purpose, cafile=files.ca)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = False  # identity is the node id, checked by cert_names_node
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_cert_chain(files.cert, files.key)
    return ctx


class TlsContexts:
    """Server and client contexts for one node, rebuilt when the files change."""

    def __init__(self, files: TlsFiles) -> None:
        self.files = files
        self.reloads = 0
        self._stamp = _fingerprint(files)
        self._server = _build(files, server_side=True)
        self._client = _build(files, server_side=False)

    def _refresh(self) -> None:
        try:
            stamp = _fingerprint(self.files)
            if stamp == self._stamp:
                return
            server = _build(self.files, server_side=True)
            client = _build(self.files, server_side=False)
        except (OSError, ssl.SSLError) as exc:
            # A rotation caught half-written: keep the old contexts, retry next connection.
            log.warning("tls reload failed, keeping previous certificates: %s", exc)
            return
        self._stamp, self._server, self._client = stamp, server, client
        self.reloads += 1
        log.info("tls certificates reloaded from %s", self.files.cert)

    def server_context(self) -> ssl.SSLContext:
        """The context for an accepted connection (current files)."""
        self._refresh()
        return self._server

    def client_context(self) -> ssl.SSLContext:
        """The context for a dialed connection (current files)."""
        self._refresh()
        return self._client


def cert_names_node(peercert: dict[str, Any] | None, node_id: str) -> bool:
    """Whether a verified peer certificate (``getpeercert()`` form) identifies ``node_id``."""
    if not peercert:
        return False
    for kind, value in peercert.get("subjectAltName", ()):
        if (kind == "DNS" and value == node_id) or (
            kind == "URI" and value == NODE_URI_PREFIX + node_id
        ):
            return True
    return False
