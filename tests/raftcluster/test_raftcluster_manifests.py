"""Golden tests for every manifest builder, plus the properties a golden file cannot state."""

from __future__ import annotations

from typing import Any

import pytest
from raftcluster_env import C, check_golden, minimal_spec

from raftpod_operator import manifests as m

NATIVE = m.Capabilities(native_sidecar=True)
LEGACY = m.Capabilities(native_sidecar=False)

FULL = {
    "replicas": 5,
    "template": {
        "metadata": {"labels": {"team": "kv"}},
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "image": "example/app:1",
                    "ports": [{"name": "http", "containerPort": 8080}],
                },
            ],
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {
                                "matchExpressions": [
                                    {"key": "disk", "operator": "In", "values": ["ssd"]}
                                ]
                            }
                        ]
                    }
                }
            },
        },
    },
    "sidecar": {
        "image": "raftpod:dev",
        "resources": {"requests": {"cpu": "100m"}},
        "nativeSidecar": "auto",
        "logLevel": "debug",
    },
    "storage": {"size": "5Gi", "storageClassName": "fast"},
    "placement": {
        "antiAffinity": "preferred",
        "topologyKey": "topology.kubernetes.io/zone",
        "topologySpread": [
            {
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "DoNotSchedule",
            }
        ],
    },
    "tls": {"enabled": False},
    "backup": {
        "compression": "gzip",
        "destination": {
            "s3": {
                "bucket": "bk",
                "region": "eu-west-1",
                "endpoint": "http://minio:9000",
                "credentialsSecret": "s3-creds",
                "sse": "AES256",
            }
        },
    },
    "restore": {
        "from": {
            "s3": {
                "bucket": "old-bk",
                "prefix": "ns/old",
                "region": "us-east-1",
                "endpoint": "https://s3.example.com/",
                "credentialsSecret": "old-creds",
            }
        }
    },
}


@pytest.mark.parametrize(
    ("name", "build"),
    [
        ("statefulset-default-native", lambda: m.stateful_set(C, minimal_spec(), NATIVE, 3)),
        ("statefulset-default-legacy", lambda: m.stateful_set(C, minimal_spec(), LEGACY, 3)),
        ("statefulset-full", lambda: m.stateful_set(C, minimal_spec(**FULL), NATIVE, 5)),
        ("service-peers", lambda: m.peers_service(C)),
        ("service-client", lambda: m.client_service(C, minimal_spec(**FULL))),
        ("pdb-5", lambda: m.pod_disruption_budget(C, 5)),
        ("networkpolicy", lambda: m.network_policy(C)),
        ("configmap-fresh-restore", lambda: m.config_map(C, minimal_spec(**FULL), 1, False)),
        ("configmap-bootstrapped", lambda: m.config_map(C, minimal_spec(**FULL), 5, True)),
        ("secret", lambda: m.secret(C, "c-admin", {"token": "t0k3n", "ca.crt": "PEM"})),
    ],
)
def test_golden(name: str, build: Any) -> None:
    check_golden(name, build())


def containers(sts: dict[str, Any]) -> dict[str, dict[str, Any]]:
    spec = sts["spec"]["template"]["spec"]
    return {c["name"]: c for c in spec["containers"] + spec.get("initContainers", [])}


def env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_native_sidecar_only_when_supported_or_forced() -> None:
    native = m.stateful_set(C, minimal_spec(), NATIVE, 3)["spec"]["template"]["spec"]
    assert native["initContainers"][0]["name"] == "raftpod"
    assert native["initContainers"][0]["restartPolicy"] == "Always"
    assert [c["name"] for c in native["containers"]] == ["app"]
    legacy = m.stateful_set(C, minimal_spec(), LEGACY, 3)["spec"]["template"]["spec"]
    assert "initContainers" not in legacy
    assert [c["name"] for c in legacy["containers"]] == ["app", "raftpod"]
    forced = minimal_spec(sidecar={"nativeSidecar": "false"})
    assert "initContainers" not in m.stateful_set(C, forced, NATIVE, 3)["spec"]["template"]["spec"]


def test_statefulset_essentials() -> None:
    sts = m.stateful_set(C, minimal_spec(), NATIVE, 3)
    spec = sts["spec"]
    assert spec["updateStrategy"] == {"type": "OnDelete"}
    assert spec["podManagementPolicy"] == "Parallel"
    assert spec["serviceName"] == "c-peers"
    pod = spec["template"]["spec"]
    required = pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert required[0]["topologyKey"] == "kubernetes.io/hostname"
    sidecar = containers(sts)["raftpod"]
    assert sidecar["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert sidecar["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert sidecar["readinessProbe"]["httpGet"]["port"] == 7002
    assert {p["containerPort"] for p in sidecar["ports"]} == {7000, 7002}
    values = env(sidecar)
    assert values["RAFTPOD_ID"] == "$(POD_NAME)"
    assert values["RAFTPOD_API_LISTEN"] == "127.0.0.1:7001"
    assert values["RAFTPOD_TLS_CERT"] == "/etc/raftpod/tls/$(POD_NAME).crt"
    assert values["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env(containers(sts)["app"])["RAFTPOD_API_URL"] == "http://127.0.0.1:7001"
    claim = spec["volumeClaimTemplates"][0]
    assert claim["spec"]["resources"]["requests"]["storage"] == "1Gi"


def test_spec_template_is_not_mutated() -> None:
    spec = minimal_spec(**FULL)
    before = repr(spec.template)
    m.stateful_set(C, spec, NATIVE, 5)
    assert repr(spec.template) == before


def test_peers_flag_uses_stable_dns_names() -> None:
    assert m.peers_flag(C, 2) == ("c-0=c-0.c-peers.ns.svc:7000,c-1=c-1.c-peers.ns.svc:7000")
    cm = m.config_map(C, minimal_spec(), 3, False)
    assert cm["data"]["bootstrap-peers"].count("=") == 3
    assert m.bootstrap_state(cm, minimal_spec(replicas=5)) == (3, False)
    assert m.bootstrap_state(None, minimal_spec(replicas=5)) == (5, False)


def test_pdb_keeps_a_majority() -> None:
    assert [m.pod_disruption_budget(C, n)["spec"]["minAvailable"] for n in (1, 3, 4, 5)] == [
        1,
        2,
        3,
        3,
    ]


def test_restore_url() -> None:
    spec = minimal_spec(restore={"from": {"s3": {"bucket": "b", "key": "/x/1.snap"}}})
    assert m.config_map(C, spec, 1, False)["data"]["restore-from"] == "s3://b/x/1.snap"
    assert "restore-from" not in m.config_map(C, spec, 1, True)["data"]
    assert m.config_map(C, minimal_spec(**FULL), 1, False)["data"]["restore-from"] == (
        "s3://old-bk/ns/old?endpoint=https%3A%2F%2Fs3.example.com&region=us-east-1"
    )


def test_a_restore_bootstraps_one_voter_and_scales_up_from_there() -> None:
    restore = {"from": {"s3": {"bucket": "b", "prefix": "p"}}}
    assert m.bootstrap_state(None, minimal_spec(restore=restore, replicas=5)) == (1, False)
    assert m.bootstrap_state(None, minimal_spec(replicas=5)) == (5, False)
    formed = m.config_map(C, minimal_spec(restore=restore), 1, True)
    assert m.bootstrap_state(formed, minimal_spec(restore=restore)) == (1, True)


def test_credentials_come_from_secret_keys_and_never_block_a_start() -> None:
    sidecar = containers(m.stateful_set(C, minimal_spec(**FULL), NATIVE, 3))["raftpod"]
    refs = {
        e["name"]: e["valueFrom"]["secretKeyRef"]
        for e in sidecar["env"]
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert refs == {
        "AWS_ACCESS_KEY_ID": {"name": "s3-creds", "key": "accessKeyId", "optional": True},
        "AWS_SECRET_ACCESS_KEY": {"name": "s3-creds", "key": "secretAccessKey", "optional": True},
        "RAFTPOD_RESTORE_AWS_ACCESS_KEY_ID": {
            "name": "old-creds",
            "key": "accessKeyId",
            "optional": True,
        },
        "RAFTPOD_RESTORE_AWS_SECRET_ACCESS_KEY": {
            "name": "old-creds",
            "key": "secretAccessKey",
            "optional": True,
        },
    }
    plain = containers(m.stateful_set(C, minimal_spec(), NATIVE, 3))["raftpod"]
    assert not [e for e in plain["env"] if "AWS" in e["name"]]


@pytest.mark.parametrize(
    ("major", "minor", "ok"),
    [("1", "28", False), ("1", "29", True), ("1", "30+", True), ("1", "", False), ("2", "0", True)],
)
def test_native_sidecar_detection(major: str, minor: str, ok: bool) -> None:
    assert m.server_supports_native_sidecar(major, minor) is ok


def test_secret_round_trip() -> None:
    data = {"token": "abc", "c-0.crt": "-----BEGIN CERTIFICATE-----\n"}
    assert m.decode_secret(m.secret(C, "x", data)) == data
    assert m.decode_secret(None) == {}


def test_owned_objects_apply_the_statefulset_last() -> None:
    objs = m.owned_objects(
        C, minimal_spec(), NATIVE, replicas=3, bootstrap_voters=3, bootstrapped=False
    )
    assert [o["kind"] for o in objs] == [
        "ConfigMap",
        "Service",
        "Service",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "StatefulSet",
    ]
    assert all(o["metadata"]["namespace"] == "ns" for o in objs)
