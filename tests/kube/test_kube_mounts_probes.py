"""Volume mounts the way a container runtime makes them, and HTTPS probes.

Mounts go parents first whatever their order in the spec, and a mountPath
missing on the host is made inside the pod's own mount namespace only: the
host never gets a directory. HTTPS probes use TLS without verifying the
server's certificate, as the kubelet does (raftpod's sidecar serves its
health endpoints over HTTPS when TLS is on).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.kube import apis
from tests.kube.env import KubeEnv
from tests.kube.workloads import PORT, http_json, is_ready, wait_pods

pytestmark = pytest.mark.kube


def app_pod(name: str, container: dict[str, Any], volumes: list[Any]) -> dict[str, Any]:
    base = {"name": "app", "image": "testapp:dev", "env": [{"name": "PORT", "value": str(PORT)}]}
    return {
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "containers": [{**base, **container, "env": base["env"] + container.get("env", [])}],
            "volumes": volumes,
            "terminationGracePeriodSeconds": 2,
            "automountServiceAccountToken": False,
        },
    }


def wait_ready_pod(env: KubeEnv, namespace: str, name: str) -> Any:
    (pod,) = wait_pods(
        env.api,
        namespace,
        f"app={name}",
        lambda pods: len(pods) == 1 and is_ready(pods[0]),
        what=f"pod {name} ready",
        timeout=60,
    )
    return pod


def test_nested_mounts_go_parents_first_and_nothing_is_created_on_the_host(
    kube_env: KubeEnv, kube_namespace: str
) -> None:
    tag = uuid.uuid4().hex[:8]
    under_tmp = f"/tmp/raftpod-testapp-{tag}/conf"
    deep = f"/var/lib/raftpod-testapp-{tag}/a/b"
    under_etc = f"/etc/raftpod-testapp-{tag}/conf"
    apis.core(kube_env.api).create_namespaced_config_map(
        kube_namespace, {"metadata": {"name": "cfg"}, "data": {"greeting": "hello"}}
    )
    container = {
        # The child is listed before its parent /tmp: mounted in order, /tmp would hide it.
        "volumeMounts": [
            {"name": "cfg", "mountPath": under_tmp, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "deep", "mountPath": deep},
            {"name": "cfg", "mountPath": under_etc, "readOnly": True},
        ],
        # exec probes run in the container's own mount namespace
        "startupProbe": {
            "exec": {"command": ["cat", f"{under_etc}/greeting"]},
            "periodSeconds": 1,
            "failureThreshold": 30,
        },
        # Ready only once it serves: the test calls it right away
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": PORT}, "periodSeconds": 1},
    }
    volumes = [
        {"name": "cfg", "configMap": {"name": "cfg"}},
        {"name": "tmp", "emptyDir": {}},
        {"name": "deep", "emptyDir": {}},
    ]
    core = apis.core(kube_env.api)
    core.create_namespaced_pod(kube_namespace, app_pod("mounts", container, volumes))
    pod = wait_ready_pod(kube_env, kube_namespace, "mounts")
    base = f"http://{pod.status.pod_ip}:{PORT}"

    def read(path: str) -> str:
        text: str = http_json(f"{base}/file?path={path}")["text"]
        return text

    assert read(f"{under_tmp}/greeting") == "hello"
    assert read(f"{under_etc}/greeting") == "hello"
    # the /etc the pod sees still has the host's files and the pod's own hosts file
    assert read("/etc/passwd") == Path("/etc/passwd").read_text()
    assert "mounts" in read("/etc/hosts").split()
    for path in (f"/tmp/raftpod-testapp-{tag}", f"/var/lib/raftpod-testapp-{tag}", under_etc):
        assert not Path(path).exists(), f"{path} was created on the host"


def test_https_probes_skip_certificate_verification(kube_env: KubeEnv, kube_namespace: str) -> None:
    # The API server's serving certificate names 127.0.0.1, not the pod: unverifiable here.
    pki = kube_env.control_plane.pki
    tls_dir = f"/etc/raftpod-testapp-{uuid.uuid4().hex[:8]}/tls"
    apis.core(kube_env.api).create_namespaced_secret(
        kube_namespace,
        {
            "metadata": {"name": "tls"},
            "stringData": {
                "tls.crt": pki.serving_cert.read_text(),
                "tls.key": pki.serving_key.read_text(),
            },
        },
    )
    probe = {"httpGet": {"path": "/healthz", "port": PORT, "scheme": "HTTPS"}, "periodSeconds": 1}
    container = {
        "env": [
            {"name": "TLS_CERT", "value": f"{tls_dir}/tls.crt"},
            {"name": "TLS_KEY", "value": f"{tls_dir}/tls.key"},
        ],
        "volumeMounts": [{"name": "tls", "mountPath": tls_dir, "readOnly": True}],
        # Without TLS every check fails: 20 failures restart it, and it never gets ready.
        "startupProbe": {**probe, "failureThreshold": 20},
        "readinessProbe": probe,
    }
    volumes = [{"name": "tls", "secret": {"secretName": "tls"}}]
    apis.core(kube_env.api).create_namespaced_pod(
        kube_namespace, app_pod("secure", container, volumes)
    )
    pod = wait_ready_pod(kube_env, kube_namespace, "secure")
    status = pod.status.container_statuses[0]
    assert status.started and status.ready
    assert status.restart_count == 0
