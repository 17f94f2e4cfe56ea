"""Pure builders: a parsed spec (plus what the operator observed) -> every owned object as a dict.

No API calls and no randomness here: the handlers feed in what they read
(bootstrap state, TLS material, how many members the scaling plan allows) and
apply the result with server-side apply. Owner references are added by the
handler (`kopf.adopt`), so these dicts are the whole desired state otherwise.

Choices worth knowing:

* ``podManagementPolicy: Parallel``: a fresh cluster needs a majority of its
  bootstrap members running before any of them is ready (``/readyz`` wants a
  leader), so OrderedReady would wait for pod 0 forever. Scaling stays one
  member at a time anyway because the operator moves ``replicas`` by one.
* ``updateStrategy: OnDelete``: the operator, not the StatefulSet controller,
  decides which pod restarts when (followers first, leader last; upgrade.py).
* Peer flags live in a ConfigMap, not in the pod template: the bootstrap voters
  are fixed at creation, later members ``--join``; a small launcher script in
  the sidecar container picks one or the other per pod, so scaling never
  changes the template (which would restart every pod).
* A restore bootstraps ONE voter (ordinal 0) from the backup; the others join
  as learners, receive the snapshot by InstallSnapshot and are promoted by the
  ordinary scale-up plan. Only one process ever reads the backup, so every
  member starts from the same snapshot even when "latest" moves meanwhile.
* S3 credentials reach the sidecar as ``AWS_ACCESS_KEY_ID`` /
  ``AWS_SECRET_ACCESS_KEY`` from the backup destination's Secret; the restore
  source's Secret (``RAFTPOD_RESTORE_AWS_*``) replaces them only in the process
  that restores. Both references are optional, so a missing Secret fails a
  backup (visibly) rather than keeping every pod from starting.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from raftpod_operator.spec import RaftClusterSpec, S3Source, majority

PEER_PORT = 7000
API_PORT = 7001
ADMIN_PORT = 7002
SIDECAR_NAME = "raftpod"
DATA_MOUNT = "/var/lib/raftpod"
DATA_DIR = f"{DATA_MOUNT}/data"  # a subdirectory: a fresh ext4 volume holds lost+found
TLS_MOUNT = "/etc/raftpod/tls"
ADMIN_MOUNT = "/etc/raftpod/admin"
RUN_AS_USER = 10001
FIELD_MANAGER = "raftpod-operator"
NATIVE_SIDECAR_MIN = (1, 29)

# Chooses --peers (a bootstrap voter whose data exists or whose cluster is still
# being created) or --join (every later member, and a bootstrap voter that lost
# its volume after the cluster formed). POSIX sh: the image is python:3.11-slim.
LAUNCHER = """\
set -eu
case ",${RAFTPOD_BOOTSTRAP_PEERS}," in
  *",${RAFTPOD_ID}="*) voter=1 ;;
  *) voter=0 ;;
esac
if [ "$voter" = 1 ] && { [ "${RAFTPOD_BOOTSTRAPPED:-false}" != true ] \\
    || [ -n "$(ls -A "$RAFTPOD_DATA_DIR" 2>/dev/null)" ]; }; then
  export RAFTPOD_PEERS="$RAFTPOD_BOOTSTRAP_PEERS"
  if [ -n "${RAFTPOD_RESTORE_FROM:-}" ] && [ -n "${RAFTPOD_RESTORE_SECRET:-}" ] \\
      && [ -z "$(ls -A "$RAFTPOD_DATA_DIR" 2>/dev/null)" ]; then
    if [ -z "${RAFTPOD_RESTORE_AWS_ACCESS_KEY_ID:-}" ]; then
      echo "restore: Secret $RAFTPOD_RESTORE_SECRET has no accessKeyId" >&2
      exit 1
    fi
    export AWS_ACCESS_KEY_ID="$RAFTPOD_RESTORE_AWS_ACCESS_KEY_ID"
    export AWS_SECRET_ACCESS_KEY="${RAFTPOD_RESTORE_AWS_SECRET_ACCESS_KEY:-}"
  fi
else
  unset RAFTPOD_RESTORE_FROM
  export RAFTPOD_JOIN="$RAFTPOD_JOIN_URL"
fi
unset RAFTPOD_RESTORE_AWS_ACCESS_KEY_ID RAFTPOD_RESTORE_AWS_SECRET_ACCESS_KEY
mkdir -p "$RAFTPOD_DATA_DIR"
exec raftpod-sidecar
"""


@dataclass(frozen=True)
class Cluster:
    """Which RaftCluster the objects belong to."""

    name: str
    namespace: str


@dataclass(frozen=True)
class Capabilities:
    """What the API server supports, detected once at operator start."""

    native_sidecar: bool


def server_supports_native_sidecar(major: str, minor: str) -> bool:
    """True for 1.29+ (``minor`` may carry a suffix such as ``29+`` on managed clusters)."""
    digits = "".join(ch for ch in minor if ch.isdigit())
    return (int(major or 0), int(digits or 0)) >= NATIVE_SIDECAR_MIN


def selector_labels(c: Cluster) -> dict[str, str]:
    return {"app.kubernetes.io/name": "raftpod", "app.kubernetes.io/instance": c.name}


def labels(c: Cluster) -> dict[str, str]:
    return {**selector_labels(c), "app.kubernetes.io/managed-by": FIELD_MANAGER}


def label_selector(c: Cluster) -> str:
    """The selector as the ``labelSelector`` query string (and status.selector)."""
    return ",".join(f"{k}={v}" for k, v in selector_labels(c).items())


def peers_service_name(c: Cluster) -> str:
    return f"{c.name}-peers"


def config_map_name(c: Cluster) -> str:
    return f"{c.name}-config"


def ca_secret_name(c: Cluster) -> str:
    return f"{c.name}-ca"


def peer_tls_secret_name(c: Cluster) -> str:
    return f"{c.name}-peer-tls"


def admin_secret_name(c: Cluster) -> str:
    return f"{c.name}-admin"


def pod_name(c: Cluster, ordinal: int) -> str:
    return f"{c.name}-{ordinal}"


def pod_host(c: Cluster, pod: str) -> str:
    """The stable DNS name of a member (the headless Service gives it)."""
    return f"{pod}.{peers_service_name(c)}.{c.namespace}.svc"


def peer_address(c: Cluster, pod: str) -> str:
    return f"{pod_host(c, pod)}:{PEER_PORT}"


def admin_url(c: Cluster, pod: str, tls: bool) -> str:
    return f"{'https' if tls else 'http'}://{pod_host(c, pod)}:{ADMIN_PORT}"


def join_url(c: Cluster, tls: bool) -> str:
    """The client Service's admin port: only ready members answer there."""
    return f"{'https' if tls else 'http'}://{c.name}.{c.namespace}.svc:{ADMIN_PORT}"


def peers_flag(c: Cluster, voters: int) -> str:
    """``--peers`` for the bootstrap voters ``<name>-0 .. <name>-(voters-1)``."""
    return ",".join(f"{pod_name(c, i)}={peer_address(c, pod_name(c, i))}" for i in range(voters))


def _meta(c: Cluster, name: str) -> dict[str, Any]:
    return {"name": name, "namespace": c.namespace, "labels": labels(c)}


def config_map(
    c: Cluster, spec: RaftClusterSpec, bootstrap_voters: int, bootstrapped: bool
) -> dict[str, Any]:
    """Launcher inputs: fixed bootstrap voters, whether the cluster formed, where to join."""
    data = {
        "bootstrap-peers": peers_flag(c, bootstrap_voters),
        "bootstrapped": "true" if bootstrapped else "false",
        "join-url": join_url(c, spec.tls.enabled),
    }
    source = spec.restore.from_.s3 if spec.restore and spec.restore.from_ else None
    if source is not None and not bootstrapped:
        data["restore-from"] = restore_url(source)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(c, config_map_name(c)),
        "data": data,
    }


def s3_url(bucket: str, path: str, **options: str) -> str:
    """``s3://bucket/path?opt=..`` in the sidecar's backup URL form; empty options are left out."""
    query = urlencode({k: v for k, v in options.items() if v})
    return f"s3://{bucket}/{path.strip('/')}" + (f"?{query}" if query else "")


def restore_url(source: S3Source) -> str:
    """``s3://bucket/<key>`` (one .snap object), or ``s3://bucket/<prefix>`` meaning its latest."""
    path = source.key if source.key is not None else source.prefix or ""
    return s3_url(source.bucket, path, endpoint=source.endpoint.rstrip("/"), region=source.region)


def _env(name: str, value: str) -> dict[str, Any]:
    return {"name": name, "value": value}


def _env_from_config(name: str, key: str, c: Cluster, optional: bool = False) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": config_map_name(c), "key": key}
    if optional:
        ref["optional"] = True
    return {"name": name, "valueFrom": {"configMapKeyRef": ref}}


def _key_pair_env(prefix: str, secret: str) -> list[dict[str, Any]]:
    """``<prefix>ACCESS_KEY_ID`` / ``<prefix>SECRET_ACCESS_KEY`` from ``secret`` (optional refs)."""
    pairs = (("ACCESS_KEY_ID", "accessKeyId"), ("SECRET_ACCESS_KEY", "secretAccessKey"))
    return [
        {
            "name": prefix + name,
            "valueFrom": {"secretKeyRef": {"name": secret, "key": key, "optional": True}},
        }
        for name, key in pairs
    ]


def _credentials_env(spec: RaftClusterSpec) -> list[dict[str, Any]]:
    """S3 key pairs from the credentials Secrets (keys ``accessKeyId``/``secretAccessKey``)."""
    env: list[dict[str, Any]] = []
    destination = spec.backup.destination.s3 if spec.backup and spec.backup.destination else None
    if destination is not None and destination.credentials_secret:
        env += _key_pair_env("AWS_", destination.credentials_secret)
    source = spec.restore.from_.s3 if spec.restore and spec.restore.from_ else None
    if source is not None and source.credentials_secret:
        env.append(_env("RAFTPOD_RESTORE_SECRET", source.credentials_secret))
        env += _key_pair_env("RAFTPOD_RESTORE_AWS_", source.credentials_secret)
    return env


def sidecar_container(c: Cluster, spec: RaftClusterSpec) -> dict[str, Any]:
    """The Raft sidecar: launcher, env for every flag, ports, probes, mounts."""
    sc = spec.sidecar
    tls = spec.tls.enabled
    env = [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        _env("RAFTPOD_ID", "$(POD_NAME)"),
        _env("RAFTPOD_DATA_DIR", DATA_DIR),
        _env("RAFTPOD_PEER_LISTEN", f"0.0.0.0:{PEER_PORT}"),
        _env("RAFTPOD_API_LISTEN", f"127.0.0.1:{API_PORT}"),
        _env("RAFTPOD_ADMIN_LISTEN", f"0.0.0.0:{ADMIN_PORT}"),
        _env(
            "RAFTPOD_ADVERTISE_PEER",
            f"$(POD_NAME).{peers_service_name(c)}.$(POD_NAMESPACE).svc:{PEER_PORT}",
        ),
        _env_from_config("RAFTPOD_BOOTSTRAP_PEERS", "bootstrap-peers", c),
        _env_from_config("RAFTPOD_BOOTSTRAPPED", "bootstrapped", c),
        _env_from_config("RAFTPOD_JOIN_URL", "join-url", c),
        _env_from_config("RAFTPOD_RESTORE_FROM", "restore-from", c, optional=True),
        _env("RAFTPOD_ELECTION_TIMEOUT_MS", sc.election_timeout_ms),
        _env("RAFTPOD_HEARTBEAT_MS", str(sc.heartbeat_ms)),
        _env("RAFTPOD_SNAPSHOT_ENTRIES", str(sc.snapshot_entries)),
        _env("RAFTPOD_LOG_FORMAT", sc.log_format),
        _env("RAFTPOD_LOG_LEVEL", sc.log_level),
        _env("RAFTPOD_ADMIN_TOKEN_FILE", f"{ADMIN_MOUNT}/token"),
        *_credentials_env(spec),
    ]
    mounts = [
        {"name": "data", "mountPath": DATA_MOUNT},
        {"name": "admin-token", "mountPath": ADMIN_MOUNT, "readOnly": True},
    ]
    if tls:
        env += [
            _env("RAFTPOD_TLS_CERT", f"{TLS_MOUNT}/$(POD_NAME).crt"),
            _env("RAFTPOD_TLS_KEY", f"{TLS_MOUNT}/$(POD_NAME).key"),
            _env("RAFTPOD_TLS_CA", f"{TLS_MOUNT}/ca.crt"),
        ]
        mounts.append({"name": "peer-tls", "mountPath": TLS_MOUNT, "readOnly": True})
    # the root filesystem is read-only; /tmp last, so a runtime that bind-mounts in order
    # from sources under /tmp (the test kubelet) still finds the other sources
    mounts.append({"name": "raftpod-tmp", "mountPath": "/tmp"})
    container: dict[str, Any] = {
        "name": SIDECAR_NAME,
        "image": sc.image,
        "imagePullPolicy": sc.image_pull_policy,
        "command": ["/bin/sh", "-c", LAUNCHER],
        "env": env,
        # a failed restore (or any crash) shows its last log lines in the pod status
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "ports": [
            {"name": "raft-peer", "containerPort": PEER_PORT, "protocol": "TCP"},
            {"name": "raft-admin", "containerPort": ADMIN_PORT, "protocol": "TCP"},
        ],
        "startupProbe": _probe("/healthz", tls, period=2, failures=60),
        "livenessProbe": _probe("/healthz", tls, period=10, failures=6),
        "readinessProbe": _probe("/readyz", tls, period=5, failures=3),
        "volumeMounts": mounts,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS_USER,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    if sc.resources:
        container["resources"] = copy.deepcopy(sc.resources)
    return container


def _probe(path: str, tls: bool, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": ADMIN_PORT, "scheme": "HTTPS" if tls else "HTTP"},
        "periodSeconds": period,
        "failureThreshold": failures,
        "timeoutSeconds": 2,
    }


def _anti_affinity(c: Cluster, spec: RaftClusterSpec) -> dict[str, Any]:
    term = {
        "labelSelector": {"matchLabels": selector_labels(c)},
        "topologyKey": spec.placement.topology_key,
    }
    if spec.placement.anti_affinity == "required":
        return {"requiredDuringSchedulingIgnoredDuringExecution": [term]}
    return {
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 100, "podAffinityTerm": term}
        ]
    }


def _merge_anti_affinity(pod_spec: dict[str, Any], ours: Mapping[str, Any]) -> None:
    anti = pod_spec.setdefault("affinity", {}).setdefault("podAntiAffinity", {})
    for key, terms in ours.items():
        anti.setdefault(key, [])
        anti[key] = [*anti[key], *terms]


def pod_template(c: Cluster, spec: RaftClusterSpec, caps: Capabilities) -> dict[str, Any]:
    """The user's template with the sidecar, volumes, labels and placement added."""
    template = copy.deepcopy(spec.template)
    metadata = template.setdefault("metadata", {})
    metadata["labels"] = {**metadata.get("labels", {}), **selector_labels(c)}
    pod_spec = template["spec"]
    app_containers = pod_spec["containers"]
    metadata.setdefault("annotations", {}).setdefault(
        "kubectl.kubernetes.io/default-container", app_containers[0]["name"]
    )
    for container in app_containers:
        names = {e.get("name") for e in container.get("env", [])}
        if "RAFTPOD_API_URL" not in names:
            container["env"] = [
                *container.get("env", []),
                _env("RAFTPOD_API_URL", f"http://127.0.0.1:{API_PORT}"),
            ]
    sidecar = sidecar_container(c, spec)
    native = spec.sidecar.native_sidecar == "true" or (
        spec.sidecar.native_sidecar == "auto" and caps.native_sidecar
    )
    if native:
        sidecar["restartPolicy"] = "Always"
        pod_spec["initContainers"] = [sidecar, *pod_spec.get("initContainers", [])]
    else:
        pod_spec["containers"] = [*app_containers, sidecar]
    volumes: list[dict[str, Any]] = [
        {"name": "raftpod-tmp", "emptyDir": {}},
        {
            "name": "admin-token",
            "secret": {
                "secretName": admin_secret_name(c),
                "items": [{"key": "token", "path": "token"}],
                "defaultMode": 0o440,
            },
        },
    ]
    if spec.tls.enabled:
        volumes.append(
            {
                "name": "peer-tls",
                "secret": {"secretName": peer_tls_secret_name(c), "defaultMode": 0o440},
            }
        )
    pod_spec["volumes"] = [*pod_spec.get("volumes", []), *volumes]
    _merge_anti_affinity(pod_spec, _anti_affinity(c, spec))
    spreads = [copy.deepcopy(t) for t in spec.placement.topology_spread]
    for spread in spreads:
        spread.setdefault("labelSelector", {"matchLabels": selector_labels(c)})
    if spreads:
        pod_spec["topologySpreadConstraints"] = [
            *pod_spec.get("topologySpreadConstraints", []),
            *spreads,
        ]
    pod_spec.setdefault("securityContext", {}).setdefault("fsGroup", RUN_AS_USER)
    return template


def stateful_set(
    c: Cluster, spec: RaftClusterSpec, caps: Capabilities, replicas: int
) -> dict[str, Any]:
    """The members. ``replicas`` comes from the scaling plan, not straight from the spec."""
    claim_spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": spec.storage.size}},
    }
    if spec.storage.storage_class_name:
        claim_spec["storageClassName"] = spec.storage.storage_class_name
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": _meta(c, c.name),
        "spec": {
            "replicas": replicas,
            "serviceName": peers_service_name(c),
            "podManagementPolicy": "Parallel",
            "updateStrategy": {"type": "OnDelete"},
            "persistentVolumeClaimRetentionPolicy": {
                "whenDeleted": "Retain",
                "whenScaled": "Retain",
            },
            "selector": {"matchLabels": selector_labels(c)},
            "template": pod_template(c, spec, caps),
            "volumeClaimTemplates": [
                {
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "metadata": {"name": "data", "labels": selector_labels(c)},
                    "spec": claim_spec,
                }
            ],
        },
    }


def _admin_service_port() -> dict[str, Any]:
    return {"name": "raft-admin", "port": ADMIN_PORT, "targetPort": ADMIN_PORT, "protocol": "TCP"}


def peers_service(c: Cluster) -> dict[str, Any]:
    """Headless: stable per-pod DNS names, published before pods are ready (bootstrap)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(c, peers_service_name(c)),
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": selector_labels(c),
            "ports": [
                {
                    "name": "raft-peer",
                    "port": PEER_PORT,
                    "targetPort": PEER_PORT,
                    "protocol": "TCP",
                },
                _admin_service_port(),
            ],
        },
    }


def client_service(c: Cluster, spec: RaftClusterSpec) -> dict[str, Any]:
    """Ready members only: the application's declared ports, and the admin port for --join."""
    ports: list[dict[str, Any]] = []
    seen: set[int] = set()
    for container in spec.template["spec"]["containers"]:
        for port in container.get("ports", []):
            number = port.get("containerPort")
            protocol = port.get("protocol", "TCP")
            if not isinstance(number, int) or number in seen or number == ADMIN_PORT:
                continue
            seen.add(number)
            ports.append(
                {
                    "name": port.get("name") or f"port-{number}",
                    "port": number,
                    "targetPort": number,
                    "protocol": protocol,
                }
            )
    ports.append(_admin_service_port())
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(c, c.name),
        "spec": {"type": "ClusterIP", "selector": selector_labels(c), "ports": ports},
    }


def pod_disruption_budget(c: Cluster, voters: int) -> dict[str, Any]:
    """Voluntary evictions may never take away the majority."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(c, c.name),
        "spec": {"minAvailable": majority(voters), "selector": {"matchLabels": selector_labels(c)}},
    }


def network_policy(c: Cluster) -> dict[str, Any]:
    """Only members reach the peer port; every other port stays as open as without a policy."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(c, peers_service_name(c)),
        "spec": {
            "podSelector": {"matchLabels": selector_labels(c)},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [{"podSelector": {"matchLabels": selector_labels(c)}}],
                    "ports": [{"protocol": "TCP", "port": PEER_PORT}],
                },
                {
                    "ports": [
                        {"protocol": "TCP", "port": 1, "endPort": PEER_PORT - 1},
                        {"protocol": "TCP", "port": PEER_PORT + 1, "endPort": 65535},
                        {"protocol": "UDP", "port": 1, "endPort": 65535},
                        {"protocol": "SCTP", "port": 1, "endPort": 65535},
                    ]
                },
            ],
        },
    }


def secret(c: Cluster, name: str, data: Mapping[str, str]) -> dict[str, Any]:
    """An Opaque Secret with base64 ``data`` (stable under server-side apply)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(c, name),
        "type": "Opaque",
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in sorted(data.items())},
    }


def decode_secret(obj: Mapping[str, Any] | None) -> dict[str, str]:
    """The string data of a Secret read from the API (empty when absent)."""
    if not obj:
        return {}
    return {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}


def restoring(spec: RaftClusterSpec) -> bool:
    """The cluster is created from a backup (``restore.from.s3``)."""
    return spec.restore is not None and spec.restore.from_ is not None


def bootstrap_state(
    existing_config: Mapping[str, Any] | None, spec: RaftClusterSpec
) -> tuple[int, bool]:
    """(bootstrap voters, bootstrapped) from the ConfigMap if it exists, else a fresh cluster."""
    data = (existing_config or {}).get("data") or {}
    if "bootstrap-peers" not in data:
        return (1 if restoring(spec) else spec.replicas), False
    voters = len([p for p in data["bootstrap-peers"].split(",") if p])
    return voters, data.get("bootstrapped") == "true"


def owned_objects(
    c: Cluster,
    spec: RaftClusterSpec,
    caps: Capabilities,
    *,
    replicas: int,
    bootstrap_voters: int,
    bootstrapped: bool,
) -> list[dict[str, Any]]:
    """Every owned object except the Secrets, in a safe apply order (StatefulSet last)."""
    return [
        config_map(c, spec, bootstrap_voters, bootstrapped),
        peers_service(c),
        client_service(c, spec),
        pod_disruption_budget(c, spec.replicas),
        network_policy(c),
        stateful_set(c, spec, caps, replicas),
    ]


def member_ordinals(c: Cluster, pods: Sequence[str]) -> dict[str, int]:
    """Pod name -> ordinal for the pods of this cluster."""
    prefix = f"{c.name}-"
    return {
        p: int(p[len(prefix) :])
        for p in pods
        if p.startswith(prefix) and p[len(prefix) :].isdigit()
    }
