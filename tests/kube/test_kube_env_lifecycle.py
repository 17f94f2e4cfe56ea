"""The environment itself: nodes as promised, and nothing left behind by stop()."""

from __future__ import annotations

import os
import socket
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.kube import apis
from tests.kube.env import KubeEnv
from tests.kube.fixtures import skip_or_fail_if_unavailable
from tests.kube.netns import NETNS_ETC
from tests.kube.workloads import PORT, http_json, is_ready, wait_pods

pytestmark = pytest.mark.kube


def listening(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def netns_names() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return {line.split()[0] for line in out.stdout.splitlines() if line.strip()}


def test_nodes_have_zones_and_stop_leaves_nothing_behind() -> None:
    skip_or_fail_if_unavailable()
    tag = uuid.uuid4().hex[:8]
    # mountPaths missing on the host: made for the pod only, never on the host
    host_dirs = [Path(f"/var/lib/raftpod-testapp-{tag}"), Path(f"/etc/raftpod-testapp-{tag}")]
    env = KubeEnv.start()
    try:
        nodes = apis.core(env.api).list_node().items
        zones = {n.metadata.labels["topology.kubernetes.io/zone"] for n in nodes}
        assert len(nodes) == 3 and len(zones) == 3
        assert {n.metadata.labels["kubernetes.io/hostname"] for n in nodes} == {
            "kubelet-1",
            "kubelet-2",
            "kubelet-3",
        }
        pod = {
            "metadata": {"name": "probe", "labels": {"app": "probe"}},
            "spec": {
                "containers": [
                    {
                        "name": "app",
                        "image": "testapp:dev",
                        "env": [{"name": "PORT", "value": str(PORT)}],
                        # Ready only once it serves: the test calls it right away
                        "readinessProbe": {
                            "httpGet": {"path": "/healthz", "port": PORT},
                            "periodSeconds": 1,
                        },
                        "volumeMounts": [
                            {"name": "scratch", "mountPath": f"{path}/data"} for path in host_dirs
                        ],
                    }
                ],
                "volumes": [{"name": "scratch", "emptyDir": {}}],
                "automountServiceAccountToken": False,
            },
        }
        apis.core(env.api).create_namespaced_pod("default", pod)
        (ready,) = wait_pods(
            env.api, "default", "app=probe", lambda ps: len(ps) == 1 and is_ready(ps[0]), what="pod"
        )
        assert http_json(f"http://{ready.status.pod_ip}:{PORT}/")["hostname"] == "probe"
        assert not any(path.exists() for path in host_dirs)
        sandboxes = env.network.sandboxes()
        pids = [p.pid for p in env.control_plane.processes]
        pids += [c.proc.pid for w in env.kubelet.workers.values() for c in w.apps if c.proc]
        ports, root, bridge = env.control_plane.ports, env.root, env.network.bridge
        relay_host, relay_port = env.api_relay.address
        assert listening(relay_port, relay_host)
        assert sandboxes and set(sandboxes) <= netns_names()
        assert all(alive(pid) for pid in pids) and len(pids) == 5
        assert all(listening(port) for port in ports)
    finally:
        env.stop()
    assert not any(alive(pid) for pid in pids)
    assert not any(listening(port) for port in ports)
    assert not env.api_relay.running
    assert not any(path.exists() for path in host_dirs)
    assert not root.exists()
    assert not set(sandboxes) & netns_names()
    assert not any((NETNS_ETC / ns).exists() for ns in sandboxes)
    assert not Path(f"/sys/class/net/{bridge}").exists()
