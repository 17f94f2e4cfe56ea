"""The whole test environment behind one start/stop API.

    env = KubeEnv.start()          # control plane + pod network + process kubelet
    env.kubeconfig                 # path for kubectl, kopf, the kubernetes client
    env.stop()                     # no processes, ports, namespaces or temp dirs left

Other test areas (operator end-to-end tests) reuse it through the session
fixture in conftest.py or by calling `KubeEnv.start()` themselves.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kubernetes import client, config

from tests.kube import apis
from tests.kube.binaries import missing
from tests.kube.controlplane import ControlPlane
from tests.kube.kubelet import ProcessKubelet
from tests.kube.launch import ImageTable, default_images
from tests.kube.netns import PodNetwork
from tests.kube.procs import wait_until

NODE_READY_TIMEOUT = 60.0


def require_kube() -> bool:
    """CI sets RAFTPOD_REQUIRE_KUBE=1 so that missing binaries fail instead of skipping."""
    return os.environ.get("RAFTPOD_REQUIRE_KUBE", "") not in ("", "0")


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

    @property
    def kubeconfig(self) -> Path:
        return self.control_plane.kubeconfig

    @classmethod
    def start(cls, images: ImageTable | None = None, nodes: int = 3) -> KubeEnv:
        root = Path(tempfile.mkdtemp(prefix="raftpod-kube-"))
        plane: ControlPlane | None = None
        network: PodNetwork | None = None
        kubelet: ProcessKubelet | None = None
        try:
            plane = ControlPlane.start(root / "control-plane")
            network = PodNetwork.create()
            api = config.new_client_from_config(str(plane.kubeconfig))  # type: ignore[no-untyped-call]
            kubelet = ProcessKubelet(api, network, images or default_images(), root, nodes)
            kubelet.start()
            env = cls(root, plane, network, kubelet, api)
            env.wait_nodes_ready()
            return env
        except BaseException:
            _run_all(
                [
                    *([kubelet.stop] if kubelet else []),
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
        """Pods, then kubelet threads, network, control plane; then remove the temp dir."""
        _run_all(
            [
                self.kubelet.stop,
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
