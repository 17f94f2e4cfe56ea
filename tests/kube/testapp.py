"""A trivial HTTP server that runs as the `testapp` image in kube tests.

GET /            {"hostname", "pod_ip", "pod_name", "data", "boots"} as JSON
GET /healthz     200 (readiness/liveness target)
GET /env?name=N       the value of environment variable N (404 if unset)
GET /file?path=P      the text of file P as the pod sees it (404 if missing)
GET /resolve?name=N   the IPv4 addresses N resolves to inside the pod
GET /fetch?url=U      another server's body, fetched from inside the pod
POST /data       store the request body in $DATA_DIR/data.txt
POST /exit?code=N     exit with status N (a crash the kubelet must restart)

With TLS_CERT and TLS_KEY set it serves HTTPS instead of HTTP.
Every start appends a line to $DATA_DIR/boots.txt, so tests can see that a
persistent volume survived a restart.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import sys
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from urllib.parse import parse_qs, urlparse


def data_dir() -> Path | None:
    value = os.environ.get("DATA_DIR")
    return Path(value) if value else None


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


class Handler(BaseHTTPRequestHandler):
    def _reply(self, code: int, body: object) -> None:
        raw = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self) -> None:
        url = urlparse(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        directory = data_dir()
        if url.path == "/healthz":
            self._reply(200, {"ok": True})
        elif url.path == "/":
            self._reply(
                200,
                {
                    "hostname": socket.gethostname(),
                    "pod_ip": os.environ.get("POD_IP", ""),
                    "pod_name": os.environ.get("POD_NAME", ""),
                    "data": _read(directory / "data.txt") if directory else "",
                    "boots": len(_read(directory / "boots.txt").splitlines()) if directory else 0,
                },
            )
        elif url.path == "/env":
            value = os.environ.get(query["name"])
            self._reply(404 if value is None else 200, {"value": value})
        elif url.path == "/file":
            try:
                self._reply(200, {"text": Path(query["path"]).read_text()})
            except OSError as exc:
                self._reply(404, {"error": str(exc)})
        elif url.path == "/resolve":
            try:
                infos = socket.getaddrinfo(query["name"], None, socket.AF_INET, socket.SOCK_STREAM)
                self._reply(200, {"addresses": sorted({str(i[4][0]) for i in infos})})
            except socket.gaierror as exc:
                self._reply(404, {"error": str(exc)})
        elif url.path == "/fetch":
            try:
                with urllib.request.urlopen(query["url"], timeout=5) as resp:
                    self._reply(200, json.loads(resp.read()))
            except OSError as exc:
                self._reply(502, {"error": str(exc)})
        else:
            self._reply(404, {"error": "not found"})

    def do_POST(self) -> None:
        url = urlparse(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        directory = data_dir()
        if url.path == "/data" and directory:
            length = int(self.headers.get("Content-Length") or 0)
            (directory / "data.txt").write_bytes(self.rfile.read(length))
            self._reply(200, {"ok": True})
        elif url.path == "/exit":
            self._reply(200, {"exiting": True})
            self.wfile.flush()
            os._exit(int(query.get("code", "1")))
        else:
            self._reply(404, {"error": "not found"})

    def log_message(self, format: str, *args: object) -> None:
        sys.stderr.write(f"{self.address_string()} {format % args}\n")


def main() -> None:
    directory = data_dir()
    if directory:
        directory.mkdir(parents=True, exist_ok=True)
        with open(directory / "boots.txt", "a") as boots:
            boots.write(f"{socket.gethostname()}\n")
    server = ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("PORT", "8080"))), Handler)
    if os.environ.get("TLS_CERT"):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(os.environ["TLS_CERT"], os.environ["TLS_KEY"])
        server.socket = context.wrap_socket(server.socket, server_side=True)

    def on_term(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_term)
    print(f"testapp listening on {server.server_address}", flush=True)
    server.serve_forever()
    server.server_close()


if __name__ == "__main__":
    main()
