"""etcd, kube-apiserver, kube-controller-manager and kube-scheduler on 127.0.0.1.

The API server flags follow controller-runtime's envtest (secure port on
127.0.0.1, an admin client certificate in system:masters, service-account
signing keys), with RBAC and Node authorization on. Unlike envtest, the
controller manager and scheduler run too, so StatefulSets, the garbage
collector, the PV binder and scheduling predicates are the real ones.
"""

from __future__ import annotations

import shutil
import ssl
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tests.kube.binaries import binary
from tests.kube.pki import Pki, make_pki
from tests.kube.procs import LoggedProcess, ProcessError, wait_until
from tests.ports import free_port

SERVICE_CIDR = "10.96.0.0/24"
READY_TIMEOUT = 90.0


def write_kubeconfig(path: Path, server: str, pki: Pki) -> None:
    """A kubeconfig for the admin certificate."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "raftpod-test",
                "cluster": {"server": server, "certificate-authority": str(pki.ca_cert)},
            }
        ],
        "users": [
            {
                "name": "admin",
                "user": {
                    "client-certificate": str(pki.admin_cert),
                    "client-key": str(pki.admin_key),
                },
            }
        ],
        "contexts": [
            {"name": "raftpod-test", "context": {"cluster": "raftpod-test", "user": "admin"}}
        ],
        "current-context": "raftpod-test",
    }
    path.write_text(yaml.safe_dump(config))


def _https_ok(url: str, context: ssl.SSLContext) -> bool:
    try:
        with urllib.request.urlopen(url, context=context, timeout=2) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@dataclass
class ControlPlane:
    """A running control plane; `stop()` ends every process and removes `root`."""

    root: Path
    kubeconfig: Path
    server: str
    pki: Pki
    processes: list[LoggedProcess] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)  # every port it listens on

    @classmethod
    def start(cls, root: Path | None = None, extra_ips: list[str] | None = None) -> ControlPlane:
        """Start everything; `extra_ips` are more addresses the serving certificate names."""
        root = root or Path(tempfile.mkdtemp(prefix="raftpod-kube-"))
        pki = make_pki(root / "pki", extra_ips)
        api_port = free_port()
        server = f"https://127.0.0.1:{api_port}"
        plane = cls(root=root, kubeconfig=root / "kubeconfig", server=server, pki=pki)
        write_kubeconfig(plane.kubeconfig, server, pki)
        try:
            plane._start_all(api_port)
        except BaseException:
            plane.stop()
            raise
        return plane

    def _spawn(self, name: str, argv: list[str]) -> LoggedProcess:
        proc = LoggedProcess(name, argv, self.root / "logs" / f"{name}.log")
        self.processes.append(proc)
        return proc

    def _wait_healthy(self, proc: LoggedProcess, url: str, context: ssl.SSLContext) -> None:
        def healthy() -> bool:
            proc.check_alive()
            return _https_ok(url, context)

        wait_until(healthy, READY_TIMEOUT, f"{proc.name} at {url}", interval=0.3)

    def _start_all(self, api_port: int) -> None:
        pki, kubeconfig = self.pki, str(self.kubeconfig)
        etcd_port, etcd_peer = free_port(), free_port()
        kcm_port, sched_port = free_port(), free_port()
        self.ports = [etcd_port, etcd_peer, api_port, kcm_port, sched_port]
        etcd_url = f"http://127.0.0.1:{etcd_port}"
        etcd = self._spawn(
            "etcd",
            [
                str(binary("etcd")),
                "--name=default",
                f"--data-dir={self.root / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-cluster=default=http://127.0.0.1:{etcd_peer}",
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )

        def etcd_healthy() -> bool:
            etcd.check_alive()
            try:
                with urllib.request.urlopen(f"{etcd_url}/health", timeout=2) as resp:
                    return b'"true"' in resp.read()
            except (urllib.error.URLError, OSError):
                return False

        wait_until(etcd_healthy, READY_TIMEOUT, "etcd", interval=0.2)

        apiserver = self._spawn(
            "kube-apiserver",
            [
                str(binary("kube-apiserver")),
                f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={api_port}",
                f"--cert-dir={self.root / 'apiserver-certs'}",
                f"--tls-cert-file={pki.serving_cert}",
                f"--tls-private-key-file={pki.serving_key}",
                f"--client-ca-file={pki.ca_cert}",
                f"--service-account-key-file={pki.sa_public}",
                f"--service-account-signing-key-file={pki.sa_private}",
                f"--service-account-issuer={self.server}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--authorization-mode=Node,RBAC",
                "--allow-privileged=true",
                "--endpoint-reconciler-type=none",
            ],
        )
        client = ssl.create_default_context(cafile=str(pki.ca_cert))
        client.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))
        self._wait_healthy(apiserver, f"{self.server}/readyz", client)

        # Both serve /healthz with a self-signed certificate they make themselves.
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE
        delegated = [
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
        ]
        kcm = self._spawn(
            "kube-controller-manager",
            [
                str(binary("kube-controller-manager")),
                *delegated,
                f"--secure-port={kcm_port}",
                f"--cert-dir={self.root / 'kcm-certs'}",
                "--controllers=*",
                f"--service-account-private-key-file={pki.sa_private}",
                f"--root-ca-file={pki.ca_cert}",
                f"--cluster-signing-cert-file={pki.ca_cert}",
                f"--cluster-signing-key-file={pki.ca_key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
            ],
        )
        scheduler = self._spawn(
            "kube-scheduler",
            [
                str(binary("kube-scheduler")),
                *delegated,
                f"--secure-port={sched_port}",
                f"--cert-dir={self.root / 'scheduler-certs'}",
            ],
        )
        self._wait_healthy(kcm, f"https://127.0.0.1:{kcm_port}/healthz", insecure)
        self._wait_healthy(scheduler, f"https://127.0.0.1:{sched_port}/healthz", insecure)

    def check_alive(self) -> None:
        """Raise ProcessError if any control-plane process has exited."""
        for proc in self.processes:
            proc.check_alive()

    def stop(self, remove: bool = True) -> None:
        """Stop in reverse start order; remove the temp dir unless told to keep it."""
        errors: list[str] = []
        for proc in reversed(self.processes):
            try:
                proc.stop(grace=10.0)
            except (OSError, ProcessError) as exc:
                errors.append(f"{proc.name}: {exc}")
        self.processes.clear()
        if remove:
            shutil.rmtree(self.root, ignore_errors=True)
        if errors:
            raise ProcessError("; ".join(errors))
