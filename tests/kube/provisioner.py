"""A tiny dynamic provisioner for the `raftpod-local` StorageClass.

It is an external provisioner in the PV controller's sense: for each pending
claim of the class it makes a directory and a hostPath PV pre-bound to the
claim (the real PV binder completes the binding), and when a PV it made is
Released under the Delete policy it removes the directory and the PV.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from kubernetes.client.exceptions import ApiException

from tests.kube.podspec import Json

STORAGE_CLASS = "raftpod-local"
PROVISIONER = "raftpod.local/process-kubelet"
PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"


def ensure_storage_class(storage: Any) -> None:
    """Create the default StorageClass (storage: StorageV1Api)."""
    body = {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": STORAGE_CLASS,
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
        },
        "provisioner": PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
    }
    try:
        storage.create_storage_class(body)
    except ApiException as exc:
        if exc.status != 409:
            raise


def _pv_for(claim: Json, root: Path) -> Json:
    meta, spec = claim["metadata"], claim["spec"]
    name = f"pvc-{meta['uid']}"
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name, "annotations": {PROVISIONED_BY: PROVISIONER}},
        "spec": {
            "capacity": {"storage": spec["resources"]["requests"]["storage"]},
            "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Delete",
            "storageClassName": STORAGE_CLASS,
            "volumeMode": spec.get("volumeMode", "Filesystem"),
            "hostPath": {"path": str(root / name), "type": "DirectoryOrCreate"},
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": meta["namespace"],
                "name": meta["name"],
                "uid": meta["uid"],
            },
        },
    }


def reconcile(core: Any, claims: list[Json], volumes: list[Json], root: Path) -> None:
    """One pass: provision pending claims, delete released volumes (core: CoreV1Api)."""
    existing = {pv["metadata"]["name"] for pv in volumes}
    for claim in claims:
        if claim["spec"].get("storageClassName") != STORAGE_CLASS or claim["spec"].get(
            "volumeName"
        ):
            continue
        pv = _pv_for(claim, root)
        if pv["metadata"]["name"] in existing or claim["metadata"].get("deletionTimestamp"):
            continue
        Path(pv["spec"]["hostPath"]["path"]).mkdir(parents=True, exist_ok=True)
        try:
            core.create_persistent_volume(pv)
        except ApiException as exc:
            if exc.status != 409:
                raise
    for pv in volumes:
        annotations = pv["metadata"].get("annotations") or {}
        if (
            annotations.get(PROVISIONED_BY) == PROVISIONER
            and pv.get("status", {}).get("phase") in ("Released", "Failed")
            and pv["spec"].get("persistentVolumeReclaimPolicy") == "Delete"
        ):
            path = Path(pv["spec"]["hostPath"]["path"])
            if path.parent == root:
                shutil.rmtree(path, ignore_errors=True)
            try:
                core.delete_persistent_volume(pv["metadata"]["name"])
            except ApiException as exc:
                if exc.status != 404:
                    raise
