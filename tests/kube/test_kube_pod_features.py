"""Pod features the process kubelet implements beyond a plain container.

Init containers run first and to completion, native sidecars keep running and
share the pod's localhost, env comes from the downward API, ConfigMaps and
Secrets, volumes (emptyDir, configMap) appear at their mountPath, and a
failing liveness probe restarts the container.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.kube import apis
from tests.kube.env import KubeEnv
from tests.kube.workloads import PORT, http_json, is_ready, wait_pods

pytestmark = pytest.mark.kube

SCRATCH = "/var/lib/raftpod-testapp-scratch"
CONFIG = "/var/lib/raftpod-testapp-config"


def features_pod() -> dict[str, Any]:
    write_init = f"import pathlib; pathlib.Path('{SCRATCH}/init.txt').write_text('from init')"
    scratch = {"name": "scratch", "mountPath": SCRATCH}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "features", "labels": {"app": "features"}},
        "spec": {
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": 5,
            "volumes": [
                {"name": "scratch", "emptyDir": {}},
                {"name": "config", "configMap": {"name": "cfg"}},
            ],
            "initContainers": [
                {
                    "name": "prepare",
                    "image": "testapp:dev",
                    "command": ["python", "-c", write_init],
                    "volumeMounts": [scratch],
                },
                {
                    "name": "sidecar",
                    "image": "testapp:dev",
                    "restartPolicy": "Always",
                    "env": [{"name": "PORT", "value": "8081"}],
                    "startupProbe": {
                        "tcpSocket": {"port": 8081},
                        "periodSeconds": 1,
                        "failureThreshold": 30,
                    },
                },
            ],
            "containers": [
                {
                    "name": "app",
                    "image": "testapp:dev",
                    "env": [
                        {"name": "PORT", "value": str(PORT)},
                        {
                            "name": "GREETING",
                            "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "greeting"}},
                        },
                        {
                            "name": "TOKEN",
                            "valueFrom": {"secretKeyRef": {"name": "sec", "key": "token"}},
                        },
                        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                        {"name": "BOTH", "value": "$(GREETING)-$(NODE)"},
                    ],
                    "volumeMounts": [
                        scratch,
                        {"name": "config", "mountPath": CONFIG, "readOnly": True},
                    ],
                    "readinessProbe": {
                        "httpGet": {"path": "/healthz", "port": PORT},
                        "periodSeconds": 1,
                    },
                }
            ],
        },
    }


def test_init_sidecar_env_and_volumes(kube_env: KubeEnv, kube_namespace: str) -> None:
    core = apis.core(kube_env.api)
    core.create_namespaced_config_map(
        kube_namespace, {"metadata": {"name": "cfg"}, "data": {"greeting": "hello"}}
    )
    core.create_namespaced_secret(
        kube_namespace, {"metadata": {"name": "sec"}, "stringData": {"token": "s3cr3t"}}
    )
    core.create_namespaced_pod(kube_namespace, features_pod())
    (pod,) = wait_pods(
        kube_env.api,
        kube_namespace,
        "app=features",
        lambda pods: len(pods) == 1 and is_ready(pods[0]),
        what="features pod ready",
    )
    base = f"http://{pod.status.pod_ip}:{PORT}"

    def env(name: str) -> str:
        value: str = http_json(f"{base}/env?name={name}")["value"]
        return value

    assert env("GREETING") == "hello"
    assert env("TOKEN") == "s3cr3t"
    assert env("NODE") == pod.spec.node_name
    assert env("BOTH") == f"hello-{pod.spec.node_name}"
    assert http_json(f"{base}/file?path={SCRATCH}/init.txt")["text"] == "from init"
    assert http_json(f"{base}/file?path={CONFIG}/greeting")["text"] == "hello"
    assert not Path(SCRATCH).exists() and not Path(CONFIG).exists()  # made for the pod only
    # The sidecar listens on the pod's own loopback, which the app container shares.
    sidecar = http_json(f"{base}/fetch?url=http://127.0.0.1:8081/")
    assert sidecar["hostname"] == "features"
    prepare, side = pod.status.init_container_statuses
    assert prepare.state.terminated.exit_code == 0
    assert side.state.running is not None and side.started


def test_failing_liveness_probe_restarts_container(kube_env: KubeEnv, kube_namespace: str) -> None:
    container = {
        "name": "app",
        "image": "testapp:dev",
        "env": [{"name": "PORT", "value": str(PORT)}],
        # Nothing answers on this path's port: the probe fails until the restart.
        "livenessProbe": {
            "tcpSocket": {"port": PORT + 1},
            "periodSeconds": 1,
            "failureThreshold": 2,
        },
    }
    pod_body = {
        "metadata": {"name": "unhealthy", "labels": {"app": "unhealthy"}},
        "spec": {
            "containers": [container],
            "terminationGracePeriodSeconds": 2,
            "automountServiceAccountToken": False,
        },
    }
    apis.core(kube_env.api).create_namespaced_pod(kube_namespace, pod_body)

    def restarted(pods: list[Any]) -> bool:
        statuses = pods[0].status.container_statuses if pods else []
        return bool(statuses) and int(statuses[0].restart_count) >= 1

    (pod,) = wait_pods(kube_env.api, kube_namespace, "app=unhealthy", restarted, what="a restart")
    last = pod.status.container_statuses[0].last_state.terminated
    assert last is not None and last.finished_at is not None
