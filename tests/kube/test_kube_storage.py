"""The raftpod-local provisioner: claims get a directory, deleting them removes it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from tests.kube import apis
from tests.kube.env import KubeEnv
from tests.kube.procs import wait_until
from tests.kube.provisioner import PROVISIONER, STORAGE_CLASS

pytestmark = pytest.mark.kube


def test_claim_is_provisioned_bound_and_reclaimed(kube_env: KubeEnv, kube_namespace: str) -> None:
    core = apis.core(kube_env.api)
    storage_class = apis.storage(kube_env.api).read_storage_class(STORAGE_CLASS)
    assert storage_class.provisioner == PROVISIONER
    claim = {
        "metadata": {"name": "scratch"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Mi"}}},
    }
    core.create_namespaced_persistent_volume_claim(kube_namespace, claim)
    bound: dict[str, Any] = {}

    def is_bound() -> bool:
        pvc = core.read_namespaced_persistent_volume_claim("scratch", kube_namespace)
        bound["pvc"] = pvc
        return bool(pvc.status.phase == "Bound")

    wait_until(is_bound, 30, "claim bound")
    pvc = bound["pvc"]
    assert pvc.spec.storage_class_name == STORAGE_CLASS  # the default class was applied
    pv = core.read_persistent_volume(pvc.spec.volume_name)
    directory = Path(pv.spec.host_path.path)
    assert directory.is_dir() and directory.is_relative_to(kube_env.root)

    core.delete_namespaced_persistent_volume_claim("scratch", kube_namespace)

    def reclaimed() -> bool:
        try:
            core.read_persistent_volume(pv.metadata.name)
        except ApiException as exc:
            return exc.status == 404 and not directory.exists()
        return False

    wait_until(reclaimed, 30, "volume and directory deleted")
