"""A StatefulSet on the real control plane and the process kubelet.

Checks what the operator will rely on: stable names and per-pod addresses,
cluster DNS names between pods, the real scheduler honouring anti-affinity,
and pods recreated (or containers restarted) with their volume data intact.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from tests.kube import apis
from tests.kube.env import KubeEnv
from tests.kube.workloads import (
    PORT,
    app_statefulset,
    deploy,
    http_json,
    is_ready,
    wait_pods,
    wait_ready,
)

pytestmark = pytest.mark.kube

APP = "web"


@pytest.fixture
def web(kube_env: KubeEnv, kube_namespace: str) -> list[Any]:
    """Three ready testapp pods with a PVC each, in a fresh namespace."""
    deploy(kube_env.api, kube_namespace, APP, app_statefulset(APP, 3))
    return wait_ready(kube_env.api, kube_namespace, APP, 3)


def url(pod: Any, path: str = "/") -> str:
    return f"http://{pod.status.pod_ip}:{PORT}{path}"


def test_pods_have_stable_names_own_addresses_and_dns(
    kube_env: KubeEnv, kube_namespace: str, web: list[Any]
) -> None:
    assert [p.metadata.name for p in web] == ["web-0", "web-1", "web-2"]
    ips = [p.status.pod_ip for p in web]
    assert len(set(ips)) == 3
    assert all(ipaddress.ip_address(ip) in kube_env.network.subnet for ip in ips)
    for pod in web:
        answer = http_json(url(pod))
        assert answer["hostname"] == pod.metadata.name
        assert answer["pod_name"] == pod.metadata.name
        assert answer["pod_ip"] == pod.status.pod_ip
        status = pod.status.container_statuses[0]
        assert status.ready and status.started and status.restart_count == 0
    # Each pod has its own loopback: all three listen on the same port without clashing,
    # and each resolves and reaches the others by their cluster DNS names.
    for pod, other in zip(web, web[1:] + web[:1], strict=True):
        fqdn = f"{other.metadata.name}.{APP}.{kube_namespace}.svc.cluster.local"
        assert http_json(url(pod, f"/resolve?name={fqdn}"))["addresses"] == [other.status.pod_ip]
        short = f"{other.metadata.name}.{APP}.{kube_namespace}.svc"
        fetched = http_json(url(pod, f"/fetch?url=http://{short}:{PORT}/"))
        assert fetched["pod_name"] == other.metadata.name
    service = f"{APP}.{kube_namespace}.svc.cluster.local"
    assert http_json(url(web[0], f"/resolve?name={service}"))["addresses"] == sorted(ips)


def test_required_anti_affinity_leaves_fourth_replica_pending(
    kube_env: KubeEnv, kube_namespace: str
) -> None:
    app = "spread"
    deploy(
        kube_env.api,
        kube_namespace,
        app,
        app_statefulset(app, 4, volume=False, anti_affinity=True),
    )

    def three_running_one_unschedulable(pods: list[Any]) -> bool:
        running = [p for p in pods if p.status.phase == "Running" and is_ready(p)]
        pending = [
            p
            for p in pods
            if p.status.phase == "Pending"
            and any(
                c.type == "PodScheduled" and c.status == "False" and c.reason == "Unschedulable"
                for c in p.status.conditions or []
            )
        ]
        return len(running) == 3 and len(pending) == 1

    pods = wait_pods(
        kube_env.api, kube_namespace, f"app={app}", three_running_one_unschedulable, what="3+1 pods"
    )
    nodes = [p.spec.node_name for p in pods if p.status.phase == "Running"]
    assert sorted(nodes) == ["kubelet-1", "kubelet-2", "kubelet-3"]
    assert [p.spec.node_name for p in pods if p.status.phase == "Pending"] == [None]


def test_deleted_pod_comes_back_with_same_name_and_volume_data(
    kube_env: KubeEnv, kube_namespace: str, web: list[Any]
) -> None:
    victim = web[1]
    http_json(url(victim, "/data"), data=b"kept across pods")
    assert http_json(url(victim))["boots"] == 1
    apis.core(kube_env.api).delete_namespaced_pod(victim.metadata.name, kube_namespace)

    def replaced(pods: list[Any]) -> bool:
        again = [p for p in pods if p.metadata.name == victim.metadata.name]
        return (
            len(pods) == 3
            and len(again) == 1
            and again[0].metadata.uid != victim.metadata.uid
            and is_ready(again[0])
        )

    pods = wait_pods(kube_env.api, kube_namespace, f"app={APP}", replaced, what="web-1 recreated")
    again = next(p for p in pods if p.metadata.name == victim.metadata.name)
    answer = http_json(url(again))
    assert answer["data"] == "kept across pods"
    assert answer["boots"] == 2
    status = again.status.container_statuses[0]
    assert status.restart_count == 0
    assert status.state.running is not None
    assert status.last_state.terminated is None


def test_crashed_container_is_restarted_in_the_same_pod(
    kube_env: KubeEnv, kube_namespace: str, web: list[Any]
) -> None:
    victim = web[2]
    http_json(url(victim, "/exit?code=3"), data=b"")

    def restarted(pods: list[Any]) -> bool:
        pod = next((p for p in pods if p.metadata.name == victim.metadata.name), None)
        if pod is None or not pod.status.container_statuses:
            return False
        status = pod.status.container_statuses[0]
        return status.restart_count == 1 and bool(status.ready)

    pods = wait_pods(kube_env.api, kube_namespace, f"app={APP}", restarted, what="web-2 restarted")
    pod = next(p for p in pods if p.metadata.name == victim.metadata.name)
    assert pod.metadata.uid == victim.metadata.uid
    terminated = pod.status.container_statuses[0].last_state.terminated
    assert terminated.exit_code == 3
    assert terminated.reason == "Error"
    assert http_json(url(pod))["boots"] == 2
