"""Turning a pod spec into what its processes get: environment and volume paths.

Works on the plain-dict (camelCase) form of a pod, as the API server sends it.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from tests.kube.launch import ImageRule, Mount, expand

Json = dict[str, Any]


class ObjectReader(Protocol):
    """The reads the kubelet needs, to resolve env and volume references."""

    def config_map(self, namespace: str, name: str) -> dict[str, str] | None: ...

    def secret(self, namespace: str, name: str) -> dict[str, str] | None: ...

    def claim_path(self, namespace: str, claim: str) -> Path | None: ...


def secret_values(data: Mapping[str, str] | None) -> dict[str, str]:
    """Decode a Secret's base64 data."""
    return {k: base64.b64decode(v).decode() for k, v in (data or {}).items()}


def field_value(pod: Json, path: str, pod_ip: str, host_ip: str) -> str:
    """The downward-API value of a fieldRef path."""
    meta, spec = pod["metadata"], pod["spec"]
    simple = {
        "metadata.name": meta["name"],
        "metadata.namespace": meta["namespace"],
        "metadata.uid": meta["uid"],
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
        "status.hostIP": host_ip,
        "status.hostIPs": host_ip,
    }
    if path in simple:
        return str(simple[path])
    for prefix, source in (
        ("metadata.labels", meta.get("labels")),
        ("metadata.annotations", meta.get("annotations")),
    ):
        if path.startswith(prefix + "['") and path.endswith("']"):
            return str((source or {}).get(path[len(prefix) + 2 : -2], ""))
    raise ValueError(f"unsupported fieldRef {path}")


def container_env(
    pod: Json,
    container: Json,
    rule: ImageRule,
    *,
    pod_ip: str,
    host_ip: str,
    reader: ObjectReader,
) -> dict[str, str]:
    """The process environment: a base, the image rule's, envFrom, then env in order."""
    namespace = pod["metadata"]["namespace"]
    hostname = pod["spec"].get("hostname") or pod["metadata"]["name"]
    env = {
        "PATH": os.pathsep.join([*rule.path_prefix, os.environ.get("PATH", "/usr/bin:/bin")]),
        "HOME": os.environ.get("HOME", "/root"),
        "HOSTNAME": hostname,
        **rule.env,
    }
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        values: dict[str, str] | None = None
        if "configMapRef" in source:
            values = reader.config_map(namespace, source["configMapRef"]["name"])
        elif "secretRef" in source:
            values = reader.secret(namespace, source["secretRef"]["name"])
        env.update({prefix + k: v for k, v in (values or {}).items()})
    for var in container.get("env") or []:
        name = var["name"]
        if "valueFrom" not in var:
            env[name] = expand(var.get("value", ""), env)
            continue
        ref = var["valueFrom"]
        if "fieldRef" in ref:
            env[name] = field_value(pod, ref["fieldRef"]["fieldPath"], pod_ip, host_ip)
            continue
        for kind, read in (("configMapKeyRef", reader.config_map), ("secretKeyRef", reader.secret)):
            if kind in ref:
                data = read(namespace, ref[kind]["name"]) or {}
                if ref[kind]["key"] in data:
                    env[name] = data[ref[kind]["key"]]
                elif not ref[kind].get("optional"):
                    raise ValueError(f"{kind} {ref[kind]['name']}/{ref[kind]['key']} not found")
    return env


def _write_files(directory: Path, data: Mapping[str, str], items: list[Json] | None) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    wanted = {i["key"]: i["path"] for i in items} if items else {k: k for k in data}
    for key, rel in wanted.items():
        if key in data:
            target = directory / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(data[key])


def volume_paths(pod: Json, pod_dir: Path, reader: ObjectReader) -> dict[str, Path] | None:
    """Host directory of each supported volume; None while a claim is not bound yet.

    PVCs map to their PV's directory, emptyDir to a directory of the pod,
    configMap and secret to files written there; projected and other kinds are
    not mounted.
    """
    namespace = pod["metadata"]["namespace"]
    paths: dict[str, Path] = {}
    for volume in pod["spec"].get("volumes") or []:
        name = volume["name"]
        if "persistentVolumeClaim" in volume:
            claim = reader.claim_path(namespace, volume["persistentVolumeClaim"]["claimName"])
            if claim is None:
                return None
            paths[name] = claim
        elif "emptyDir" in volume:
            paths[name] = pod_dir / "volumes" / name
            paths[name].mkdir(parents=True, exist_ok=True)
        elif "hostPath" in volume:
            paths[name] = Path(volume["hostPath"]["path"])
        elif "configMap" in volume or "secret" in volume:
            if "configMap" in volume:
                src = volume["configMap"]
                data = reader.config_map(namespace, src["name"])
            else:
                src = volume["secret"]
                data = reader.secret(namespace, src["secretName"])
            paths[name] = pod_dir / "volumes" / name
            _write_files(paths[name], data or {}, src.get("items"))
    return paths


def container_mounts(container: Json, volumes: Mapping[str, Path]) -> list[Mount]:
    """Bind mounts for the container's volumeMounts of supported volumes."""
    mounts = []
    for vm in container.get("volumeMounts") or []:
        if vm["name"] not in volumes:
            continue
        source = volumes[vm["name"]]
        if vm.get("subPath"):
            source = source / vm["subPath"]
            source.mkdir(parents=True, exist_ok=True)
        mounts.append(Mount(source, vm["mountPath"], bool(vm.get("readOnly"))))
    return mounts
