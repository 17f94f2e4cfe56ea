"""Container probes (httpGet over HTTP or HTTPS, tcpSocket, exec) with Kubernetes' thresholds.

A probe runs at its periodSeconds, clamped to [MIN_PERIOD, MAX_PERIOD] so tests
stay quick, and flips its result only after successThreshold successes or
failureThreshold failures in a row, as the real kubelet does.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

MIN_PERIOD = 0.5
MAX_PERIOD = 10.0


def resolve_port(port: object, container: Mapping[str, Any]) -> int:
    """A probe port: a number, or the name of one of the container's ports."""
    if isinstance(port, int):
        return port
    if isinstance(port, str) and port.isdigit():
        return int(port)
    for declared in container.get("ports") or []:
        if declared.get("name") == port:
            return int(declared["containerPort"])
    raise ValueError(f"unknown port {port!r}")


def _insecure_tls() -> ssl.SSLContext:
    """TLS without verifying the server, as the kubelet's HTTPS probes do."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def http_get(
    host: str,
    port: int,
    path: str,
    timeout: float,
    *,
    scheme: str = "HTTP",
    headers: Mapping[str, str] | None = None,
) -> bool:
    """Kubernetes semantics: any status in [200, 400) is a success; HTTPS skips verification."""
    conn: http.client.HTTPConnection
    if scheme.upper() == "HTTPS":
        conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=_insecure_tls())
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path or "/", headers=dict(headers or {}))
        return 200 <= conn.getresponse().status < 400
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def tcp_open(host: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class Prober:
    """One probe of one container; `due()` and `run()` are called from its pod loop."""

    def __init__(
        self,
        spec: Mapping[str, Any],
        container: Mapping[str, Any],
        pod_ip: str,
        exec_argv: Callable[[Sequence[str]], list[str]],
        initially: bool,
    ) -> None:
        self.spec = spec
        self.container = container
        self.pod_ip = pod_ip
        self.exec_argv = exec_argv
        self.period = min(max(float(spec.get("periodSeconds") or 10), MIN_PERIOD), MAX_PERIOD)
        self.timeout = min(float(spec.get("timeoutSeconds") or 1), MAX_PERIOD)
        self.success_threshold = int(spec.get("successThreshold") or 1)
        self.failure_threshold = int(spec.get("failureThreshold") or 3)
        self.initial_delay = min(float(spec.get("initialDelaySeconds") or 0), MAX_PERIOD)
        self.reset(initially)

    def reset(self, initially: bool) -> None:
        """Start over for a new container instance."""
        self.result = initially
        self.failures = 0  # consecutive failed checks
        self._streak = 0
        self._next = time.monotonic() + self.initial_delay

    def due(self) -> bool:
        return time.monotonic() >= self._next

    def _check(self) -> bool:
        spec = self.spec
        if "httpGet" in spec:
            action = spec["httpGet"]
            port = resolve_port(action.get("port"), self.container)
            return http_get(
                action.get("host") or self.pod_ip,
                port,
                action.get("path", "/"),
                self.timeout,
                scheme=action.get("scheme") or "HTTP",
                headers={h["name"]: h["value"] for h in action.get("httpHeaders") or []},
            )
        if "tcpSocket" in spec:
            action = spec["tcpSocket"]
            port = resolve_port(action.get("port"), self.container)
            return tcp_open(action.get("host") or self.pod_ip, port, self.timeout)
        if "exec" in spec:
            argv = self.exec_argv(spec["exec"].get("command") or [])
            try:
                done = subprocess.run(
                    argv, capture_output=True, timeout=self.timeout + 5, check=False
                )
            except subprocess.TimeoutExpired:
                return False
            return done.returncode == 0
        return True  # grpc and unknown handlers count as passing

    def run(self) -> bool:
        """Probe once and return the (thresholded) result."""
        self._next = time.monotonic() + self.period
        ok = self._check()
        self.failures = 0 if ok else self.failures + 1
        if ok == self.result:
            self._streak = 0
            return self.result
        self._streak += 1
        if self._streak >= (self.success_threshold if ok else self.failure_threshold):
            self.result = ok
            self._streak = 0
        return self.result
