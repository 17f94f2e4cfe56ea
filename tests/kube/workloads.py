"""Manifests and waits the kube tests share: a testapp StatefulSet and its service."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from typing import Any

from kubernetes import client

from tests.kube import apis
from tests.kube.procs import wait_until

Json = dict[str, Any]
PORT = 8080
DATA_MOUNT = "/var/lib/raftpod-testapp"


def headless_service(name: str) -> Json:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": {"app": name},
            "ports": [{"name": "http", "port": PORT}],
        },
    }


def app_statefulset(
    name: str, replicas: int, *, volume: bool = True, anti_affinity: bool = False
) -> Json:
    """`replicas` testapp pods behind headless service `name`, optionally with a PVC each."""
    env = [
        {"name": "PORT", "value": str(PORT)},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
    ]
    probe = {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 1}
    container: Json = {
        "name": "app",
        "image": "testapp:dev",
        "env": env,
        "ports": [{"name": "http", "containerPort": PORT}],
        # liveness starts after the startup probe passed, however slow a loaded machine is
        "startupProbe": {**probe, "failureThreshold": 60},
        "readinessProbe": probe,
        "livenessProbe": {**probe, "failureThreshold": 5},
    }
    spec: Json = {
        "serviceName": name,
        "replicas": replicas,
        "podManagementPolicy": "Parallel",
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {
                "containers": [container],
                "terminationGracePeriodSeconds": 5,
                "automountServiceAccountToken": False,
            },
        },
    }
    if volume:
        env.append({"name": "DATA_DIR", "value": DATA_MOUNT})
        container["volumeMounts"] = [{"name": "data", "mountPath": DATA_MOUNT}]
        spec["volumeClaimTemplates"] = [
            {
                "metadata": {"name": "data"},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "1Mi"}},
                },
            }
        ]
    if anti_affinity:
        spec["template"]["spec"]["affinity"] = {
            "podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "labelSelector": {"matchLabels": {"app": name}},
                        "topologyKey": "kubernetes.io/hostname",
                    }
                ]
            }
        }
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name},
        "spec": spec,
    }


def deploy(api: client.ApiClient, namespace: str, name: str, statefulset: Json) -> None:
    apis.core(api).create_namespaced_service(namespace, headless_service(name))
    apis.apps(api).create_namespaced_stateful_set(namespace, statefulset)


def is_ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def wait_pods(
    api: client.ApiClient,
    namespace: str,
    selector: str,
    check: Callable[[list[Any]], bool],
    *,
    what: str,
    timeout: float = 90.0,
) -> list[Any]:
    """Poll the pods matching `selector` until `check(pods)` holds; return them by name."""
    core = apis.core(api)
    found: list[Any] = []

    def done() -> bool:
        found[:] = sorted(
            core.list_namespaced_pod(namespace, label_selector=selector).items,
            key=lambda p: p.metadata.name,
        )
        return check(found)

    wait_until(done, timeout, what, interval=0.5)
    return found


def wait_ready(api: client.ApiClient, namespace: str, app: str, count: int) -> list[Any]:
    """Wait for exactly `count` Running and Ready pods of `app`."""
    return wait_pods(
        api,
        namespace,
        f"app={app}",
        lambda pods: (
            len(pods) == count and all(p.status.phase == "Running" and is_ready(p) for p in pods)
        ),
        what=f"{count} ready pods of {app}",
    )


_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # pod IPs: no proxy


def http_json(url: str, data: bytes | None = None) -> Json:
    """GET (or POST `data` to) a testapp URL and decode its JSON answer."""
    request = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    with _DIRECT.open(request, timeout=10) as resp:
        body: Json = json.loads(resp.read())
        return body
