"""The CRD and the operator against a real kube-apiserver (control plane only, no kubelet).

What a unit test cannot show: the API server accepts the generated CRD (its
defaults pass its own CEL rules), rejects invalid specs with those rules, and
the operator's login, server-side apply, status writes and finalizer work.
Pods stay Pending here (no nodes), so the cluster never leaves Bootstrapping;
running members are for the e2e tests.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from tests.kube.binaries import missing
from tests.kube.env import skip_or_fail

from raftpod_operator.crd import crd_manifest

pytestmark = pytest.mark.kube

GROUP, VERSION, PLURAL = "raftpod.io", "v1alpha1", "raftclusters"
OPERATOR = Path(sys.executable).parent / "raftpod-operator"
TEMPLATE = {"spec": {"containers": [{"name": "app", "image": "busybox"}]}}


def wait_for(check: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.3)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[client.ApiClient]:
    absent = missing()
    if absent:
        skip_or_fail(f"control-plane binaries missing ({', '.join(absent)}): scripts/testbin build")
    from tests.kube.controlplane import ControlPlane

    plane = ControlPlane.start(tmp_path_factory.mktemp("plane"))
    try:
        api_client = config.new_client_from_config(str(plane.kubeconfig))
        api_client.kubeconfig_path = str(plane.kubeconfig)  # for the operator process
        ext = client.ApiextensionsV1Api(api_client)
        ext.create_custom_resource_definition(crd_manifest())

        def established() -> bool:
            crd = ext.read_custom_resource_definition(f"{PLURAL}.{GROUP}")
            return any(
                c.type == "Established" and c.status == "True" for c in crd.status.conditions or []
            )

        wait_for(established, "the CRD to be established")
        yield api_client
        api_client.close()
    finally:
        plane.stop()


@pytest.fixture
def namespace(api: client.ApiClient) -> Iterator[str]:
    name = f"rc-{uuid.uuid4().hex[:8]}"
    client.CoreV1Api(api).create_namespace({"metadata": {"name": name}})
    yield name
    client.CoreV1Api(api).delete_namespace(name)


def raft(name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "RaftCluster",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"template": TEMPLATE, **spec},
    }


def rejection(call: Callable[[], Any]) -> str:
    with pytest.raises(ApiException) as info:
        call()
    assert info.value.status == 422, info.value.body
    return str(json.loads(info.value.body)["message"])


def test_crd_defaults_and_cel_rules(api: client.ApiClient, namespace: str) -> None:
    objs = client.CustomObjectsApi(api)
    created = objs.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, raft("a", namespace)
    )
    spec = created["spec"]
    assert spec["replicas"] == 3
    assert spec["sidecar"]["electionTimeoutMs"] == "150:300"
    assert spec["placement"]["antiAffinity"] == "required"
    assert spec["upgrade"] == {"paused": False, "maxLagEntries": 1000}

    def patch(body: dict[str, Any], name: str = "a") -> Callable[[], Any]:
        return lambda: objs.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, {"spec": body}
        )

    assert "greater than or equal to 1" in rejection(patch({"replicas": 0}))
    assert "heartbeatMs must be below" in rejection(patch({"sidecar": {"heartbeatMs": 400}}))
    assert "lo < hi" in rejection(patch({"sidecar": {"electionTimeoutMs": "300:100"}}))
    assert "storage.size cannot change" in rejection(patch({"storage": {"size": "2Gi"}}))
    assert "storageClassName cannot change" in rejection(
        patch({"storage": {"storageClassName": "fast"}})
    )
    restore = {"from": {"s3": {"bucket": "b", "key": "k1"}}}
    assert "only be given at creation" in rejection(patch({"restore": restore}))
    objs.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, raft("b", namespace, restore=restore)
    )
    changed = {"from": {"s3": {"bucket": "b", "key": "k2"}}}
    assert "cannot change" in rejection(patch({"restore": changed}, "b"))
    both = {"from": {"s3": {"bucket": "b", "key": "k", "prefix": "p"}}}
    assert "exactly one of key or prefix" in rejection(
        lambda: objs.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, raft("c", namespace, restore=both)
        )
    )
    scaled = client.CustomObjectsApi(api).patch_namespaced_custom_object_scale(
        GROUP, VERSION, namespace, PLURAL, "a", {"spec": {"replicas": 5}}
    )
    assert scaled["spec"]["replicas"] == 5


@pytest.fixture
def operator(api: client.ApiClient, namespace: str, tmp_path: Path) -> Iterator[Path]:
    log = tmp_path / "operator.log"
    env = {**os.environ, "KUBECONFIG": api.kubeconfig_path}  # type: ignore[attr-defined]
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                str(OPERATOR),
                "run",
                "--standalone",
                "-n",
                namespace,
                "--metrics-port",
                "0",
                "--verbose",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        yield log
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def test_operator_creates_owned_objects_writes_status_and_cleans_up(
    api: client.ApiClient, namespace: str, operator: Path
) -> None:
    objs, core = client.CustomObjectsApi(api), client.CoreV1Api(api)
    apps = client.AppsV1Api(api)
    body = objs.create_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        raft("demo", namespace, storage={"retainOnDelete": False}),
    )

    def sts() -> Any:
        try:
            return apps.read_namespaced_stateful_set("demo", namespace)
        except ApiException:
            return None

    found = wait_for(sts, "the StatefulSet", timeout=90)
    assert found.metadata.owner_references[0].uid == body["metadata"]["uid"]
    assert found.spec.update_strategy.type == "OnDelete"
    sidecar = found.spec.template.spec.init_containers[0]  # 1.35: a native sidecar
    assert (sidecar.name, sidecar.restart_policy) == ("raftpod", "Always")
    services = {s.metadata.name for s in core.list_namespaced_service(namespace).items}
    assert services == {"demo", "demo-peers"}
    secrets = {s.metadata.name for s in core.list_namespaced_secret(namespace).items}
    assert {"demo-ca", "demo-peer-tls", "demo-admin"} <= secrets
    pdb = client.PolicyV1Api(api).read_namespaced_pod_disruption_budget("demo", namespace)
    assert pdb.spec.min_available == 2
    client.NetworkingV1Api(api).read_namespaced_network_policy("demo-peers", namespace)

    def phase() -> str | None:
        obj = objs.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "demo")
        return (obj.get("status") or {}).get("phase")

    assert wait_for(phase, "status.phase", timeout=60) == "Bootstrapping"
    wait_for(lambda: core.list_namespaced_persistent_volume_claim(namespace).items, "PVCs")
    objs.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "demo")
    wait_for(
        lambda: not core.list_namespaced_persistent_volume_claim(namespace).items,
        f"the PVCs to be deleted (operator log: {operator})",
        timeout=90,
    )

    def gone() -> bool:
        try:
            objs.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "demo")
        except ApiException as exc:
            return exc.status == 404
        return False

    wait_for(gone, "the RaftCluster to be deleted (finalizer released)")
