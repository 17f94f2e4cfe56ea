"""The whole test environment behind one start/stop API.

    env = KubeEnv.start()          # control plane + pod network + process kubelet
    env.kubeconfig                 # path for kubectl, kopf, the kubernetes client
    env.in_cluster_argv(argv)      # argv run in the cluster network (cluster DNS, pod IPs)
    env.stop()                     # no processes, ports, namespaces or temp dirs left

Other test areas (operator end-to-end tests) reuse it through the session
fixture in conftest.py or by calling `KubeEnv.start()` themselves.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit

import pytest
from kubernetes import client, config

from tests.kube import apis
from tests.kube.binaries import missing
from tests.kube.controlplane import ControlPlane, write_kubeconfig
from tests.kube.kubelet import ProcessKubelet
from tests.kube.launch import ImageTable, default_images
from tests.kube.netns import PodNetwork
from tests.kube.procs import wait_until
from tests.kube.relay import TcpRelay

NODE_READY_TIMEOUT = 60.0


def require_kube() -> bool:
    """CI sets RAFTPOD_REQUIRE_KUBE=1 so that missing binaries fail instead of skipping."""
    return os.environ.get("RAFTPOD_REQUIRE_KUBE", "") not in ("", "0")


def skip_or_fail(reason: str) -> NoReturn:
    """Skip saying why, or fail loudly when CI requires the real parts."""
    if require_kube():
        pytest.fail(f"RAFTPOD_REQUIRE_KUBE is set but {reason}", pytrace=False)
    pytest.skip(reason)


def unavailable_reason() -> str | None:
    """Why the environment cannot start here, or None."""
    if os.geteuid() != 0:
        return "the process kubelet needs root (network namespaces, bind mounts)"
    absent = missing()
    if absent:
        return f"binaries missing ({', '.join(absent)}): run scripts/testbin build"
    return None


@dataclass
class KubeEnv:
    root: Path
    control_plane: ControlPlane
    network: PodNetwork
    kubelet: ProcessKubelet
    api: client.ApiClient
    api_relay: TcpRelay

    @property
    def kubeconfig(self) -> Path:
        return self.control_plane.kubeconfig

    @property
    def in_cluster_server(self) -> str:
        """The API server's URL from the cluster network (pods, `in_cluster_argv`)."""
        host, port = self.api_relay.address
        return f"https://{host}:{port}"

    @property
    def in_cluster_kubeconfig(self) -> Path:
        """The admin kubeconfig, pointing at `in_cluster_server`."""
        return self.root / "in-cluster.kubeconfig"

    def in_cluster_argv(self, argv: Sequence[str], namespace: str = "default") -> list[str]:
        """`argv` run in the cluster network, where an in-cluster operator would run.

        The process gets its own network namespace on the pod bridge (its own IP
        and loopback) whose /etc/hosts holds the cluster DNS names, with short
        names relative to `namespace`, kept current as pods and services change.
        It reaches pod IPs directly and the API server at `in_cluster_server`
        (use `in_cluster_kubeconfig`); the host's 127.0.0.1 is not reachable.
        """
        ip = shutil.which("ip") or "ip"  # absolute, so the caller's PATH may omit it
        return [ip, "netns", "exec", self.kubelet.cluster_client(namespace), *argv]

    @classmethod
    def start(cls, images: ImageTable | None = None, nodes: int = 3) -> KubeEnv:
        root = Path(tempfile.mkdtemp(prefix="raftpod-kube-"))
        plane: ControlPlane | None = None
        network: PodNetwork | None = None
        kubelet: ProcessKubelet | None = None
        relay: TcpRelay | None = None
        try:
            network = PodNetwork.create()
            plane = ControlPlane.start(root / "control-plane", extra_ips=[network.gateway])
            api_port = urlsplit(plane.server).port
            assert api_port is not None
            relay = TcpRelay(network.gateway, api_port, "127.0.0.1", api_port)
            write_kubeconfig(
                root / "in-cluster.kubeconfig", f"https://{network.gateway}:{api_port}", plane.pki
            )
            api = config.new_client_from_config(str(plane.kubeconfig))  # type: ignore[no-untyped-call]
            kubelet = ProcessKubelet(api, network, images or default_images(), root, nodes)
            kubelet.start()
            env = cls(root, plane, network, kubelet, api, relay)
            env.wait_nodes_ready()
            return env
        except BaseException:
            _run_all(
                [
                    *([kubelet.stop] if kubelet else []),
                    *([relay.stop] if relay else []),
                    *([network.stop] if network else []),
                    *([lambda: plane.stop(remove=False)] if plane else []),
                    lambda: shutil.rmtree(root, ignore_errors=True),
                ]
            )
            raise

    def wait_nodes_ready(self) -> None:
        """Wait until every node is Ready and untainted (the lifecycle controller ran)."""
        core = apis.core(self.api)

        def ready() -> bool:
            self.control_plane.check_alive()
            nodes = core.list_node().items
            return len(nodes) == len(self.kubelet.nodes) and all(
                not n.spec.taints
                and any(c.type == "Ready" and c.status == "True" for c in n.status.conditions or [])
                for n in nodes
            )

        wait_until(ready, NODE_READY_TIMEOUT, "nodes Ready without taints", interval=0.5)

    def logs(self) -> str:
        """Every log file of the environment, for test failure output."""
        parts = []
        for path in sorted(self.root.rglob("*.log")):
            text = path.read_text(errors="replace").splitlines()[-60:]
            parts.append(f"----- {path.relative_to(self.root)}\n" + "\n".join(text))
        return "\n".join(parts)

    def stop(self) -> None:
        """Pods, kubelet threads, API relay, network, control plane; then the temp dir."""
        _run_all(
            [
                self.kubelet.stop,
                self.api_relay.stop,
                self.network.stop,
                self.api.close,
                lambda: self.control_plane.stop(remove=False),
                lambda: shutil.rmtree(self.root, ignore_errors=True),
            ]
        )


def _run_all(steps: list[Callable[[], object]]) -> None:
    """Run every cleanup step even if some fail; then raise the first failure."""
    errors: list[Exception] = []
    for step in steps:
        try:
            step()
        except Exception as exc:
            errors.append(exc)
    if errors:
        raise errors[0]
