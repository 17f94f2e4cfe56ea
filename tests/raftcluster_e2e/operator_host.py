"""The operator as a host process that sees the cluster the way a pod of it would.

In a real cluster the operator resolves ``<pod>.<name>-peers.<ns>.svc`` through
cluster DNS and dials the pod IP. Here the host reaches pod IPs over the
bridge, and `ClusterDns` writes the names cluster DNS would serve into a hosts
file (the same records the process kubelet gives pods). The operator runs in a
private mount namespace (`unshare --mount`) with that file bind-mounted over
/etc/hosts, so the host's own /etc/hosts is never touched.
"""

from __future__ import annotations

import json
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kubernetes import client

from tests.kube import apis
from tests.kube.hosts import PodAddress, records
from tests.kube.netns import write_in_place
from tests.kube.procs import LoggedProcess, wait_until
from tests.ports import free_port

DNS_REFRESH_SECONDS = 0.5
OPERATOR_READY_TIMEOUT = 60.0
OPERATOR = Path(sys.executable).parent / "raftpod-operator"
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _raw_items(call: Any) -> list[dict[str, Any]]:
    """A list call's items as plain JSON (camelCase, as the hosts records expect)."""
    items: list[dict[str, Any]] = json.loads(call(_preload_content=False).data)["items"]
    return items


def _pod_address(pod: dict[str, Any]) -> PodAddress | None:
    meta, spec, status = pod["metadata"], pod["spec"], pod.get("status") or {}
    if not status.get("podIP"):
        return None
    conditions = status.get("conditions") or []
    return PodAddress(
        namespace=meta["namespace"],
        name=meta["name"],
        ip=status["podIP"],
        ready=any(c["type"] == "Ready" and c["status"] == "True" for c in conditions),
        labels=meta.get("labels") or {},
        hostname=spec.get("hostname", ""),
        subdomain=spec.get("subdomain", ""),
    )


class ClusterDns:
    """Keeps a hosts file with every service and pod name of the cluster up to date."""

    def __init__(self, api: client.ApiClient, path: Path) -> None:
        self.path = path
        self._core = apis.core(api)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cluster-dns", daemon=True)
        self.errors = 0

    def refresh(self) -> None:
        pods = [
            a for p in _raw_items(self._core.list_pod_for_all_namespaces) if (a := _pod_address(p))
        ]
        services = _raw_items(self._core.list_service_for_all_namespaces)
        lines = ["127.0.0.1\tlocalhost"]
        lines += [f"{ip}\t{' '.join(names)}" for ip, names in records(pods, services, "")]
        write_in_place(self.path, "\n".join(lines) + "\n")

    def start(self) -> None:
        self.refresh()
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(DNS_REFRESH_SECONDS):
            try:
                self.refresh()
            except Exception:  # the API server restarting must not end the thread
                self.errors += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def _with_local_ports(args: Sequence[str], liveness_port: int, metrics_port: int) -> list[str]:
    """The chart's args with its pod ports moved to free ports on the host's loopback."""
    local = {
        "--liveness": f"--liveness=http://127.0.0.1:{liveness_port}/healthz",
        "--metrics-port": f"--metrics-port={metrics_port}",
    }
    return [local.get(arg.partition("=")[0], arg) for arg in args]


class HostOperator:
    """`raftpod-operator` with the chart's arguments, logged in through `kubeconfig`."""

    def __init__(
        self, args: Sequence[str], kubeconfig: Path, hosts_file: Path, log_path: Path
    ) -> None:
        self.liveness_port, self.metrics_port = free_port(), free_port()
        self.args = _with_local_ports(args, self.liveness_port, self.metrics_port)
        self.log_path = log_path
        script = f'mount --bind "{hosts_file}" /etc/hosts && exec "$@"'
        argv = ["unshare", "--mount", "sh", "-c", script, "sh", str(OPERATOR), *self.args]
        env = {"PATH": f"{OPERATOR.parent}:/usr/bin:/bin", "KUBECONFIG": str(kubeconfig)}
        self.process = LoggedProcess("raftpod-operator", argv, log_path, env=env)

    def wait_live(self) -> None:
        """Until the liveness endpoint answers (kopf serves it once the operator runs)."""

        def live() -> bool:
            self.process.check_alive()
            try:
                url = f"http://127.0.0.1:{self.liveness_port}/healthz"
                with _DIRECT.open(url, timeout=2) as resp:
                    return bool(resp.status == 200)
            except (urllib.error.URLError, OSError):
                return False

        wait_until(live, OPERATOR_READY_TIMEOUT, "the operator's liveness endpoint", 0.5)

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with _DIRECT.open(url, timeout=5) as resp:
            return str(resp.read().decode())

    def log_tail(self, lines: int = 80) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self) -> int:
        return self.process.stop(grace=15.0)
