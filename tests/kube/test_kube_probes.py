"""httpGet probes against a real HTTPS server on 127.0.0.1 (no cluster needed)."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.kube.pki import make_pki
from tests.kube.probes import http_get


class Healthz(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/healthz" else 500)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def https_port(tmp_path: Path) -> Iterator[int]:
    """An HTTPS server whose certificate no client could verify (self-made CA)."""
    pki = make_pki(tmp_path / "pki")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Healthz)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.serving_cert, pki.serving_key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_https_probe_uses_tls_without_verifying(https_port: int) -> None:
    assert http_get("127.0.0.1", https_port, "/healthz", 5, scheme="HTTPS")
    assert not http_get("127.0.0.1", https_port, "/broken", 5, scheme="HTTPS")


def test_plain_http_probe_fails_against_https(https_port: int) -> None:
    assert not http_get("127.0.0.1", https_port, "/healthz", 5)
