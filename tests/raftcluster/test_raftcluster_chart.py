"""The Helm chart rendered by the real helm binary (scripts/testbin): RBAC, args, peering."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.kube.binaries import binary
from tests.kube.env import require_kube

CHART = Path(__file__).resolve().parents[2] / "charts" / "raftpod"

# Exactly what the handlers call (kube.py + kopf itself), per namespace.
NAMESPACED = {
    ("raftpod.io", "raftclusters"): {"get", "list", "watch", "patch", "update"},
    ("raftpod.io", "raftclusters/status"): {"get", "patch", "update"},
    ("apps", "statefulsets"): {"get", "create", "patch"},
    ("", "services"): {"get", "create", "patch"},
    ("", "configmaps"): {"get", "create", "patch"},
    ("", "secrets"): {"get", "create", "patch"},
    ("policy", "poddisruptionbudgets"): {"get", "create", "patch"},
    ("networking.k8s.io", "networkpolicies"): {"get", "create", "patch"},
    ("", "pods"): {"get", "list", "watch", "delete"},
    ("", "persistentvolumeclaims"): {"list", "delete"},
    ("", "events"): {"create"},
    ("events.k8s.io", "events"): {"create"},
    ("kopf.dev", "kopfpeerings"): {"get", "list", "watch", "patch"},
}
# kopf's resource observer lists and watches CRDs; they are cluster-scoped, so this
# rule sits in a ClusterRole even when only some namespaces are watched.
CRDS = {("apiextensions.k8s.io", "customresourcedefinitions"): {"list", "watch"}}


def helm() -> Path:
    path = binary("helm")
    if not os.access(path, os.X_OK):
        if require_kube():
            pytest.fail(f"RAFTPOD_REQUIRE_KUBE is set but helm is missing at {path}")
        pytest.skip(f"helm not built (scripts/testbin build helm): {path}")
    return path


def render(*sets: str) -> list[dict[str, Any]]:
    args = [str(helm()), "template", "rel", str(CHART), "-n", "ops", "--kube-version", "1.31.0"]
    for s in sets:
        args += ["--set", s]
    out = subprocess.run(args, capture_output=True, text=True, timeout=60, check=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def granted(rules: list[dict[str, Any]]) -> dict[tuple[str, str], set[str]]:
    result: dict[tuple[str, str], set[str]] = {}
    for rule in rules:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                result.setdefault((group, resource), set()).update(rule["verbs"])
    return result


def test_lint() -> None:
    done = subprocess.run(
        [str(helm()), "lint", str(CHART), "--kube-version", "1.31.0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_default_is_cluster_wide_with_two_peering_replicas() -> None:
    docs = render()
    [role] = by_kind(docs, "ClusterRole")
    expected = {
        **NAMESPACED,
        **CRDS,
        ("kopf.dev", "clusterkopfpeerings"): {"get", "list", "watch", "patch"},
    }
    assert granted(role["rules"]) == expected
    assert not by_kind(docs, "Role")
    [deploy] = by_kind(docs, "Deployment")
    assert deploy["spec"]["replicas"] == 2
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][:3] == ["run", "--peering=raftpod", "--all-namespaces"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert deploy["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    assert [p["metadata"]["name"] for p in by_kind(docs, "ClusterKopfPeering")] == ["raftpod"]
    [metrics] = by_kind(docs, "Service")
    assert metrics["spec"]["ports"][0]["port"] == 9090


def test_watched_namespaces_get_roles_and_a_cluster_role_for_crds_only() -> None:
    docs = render("watchNamespaces={a,b}", "peering.enabled=false")
    [cluster_role] = by_kind(docs, "ClusterRole")
    assert granted(cluster_role["rules"]) == CRDS
    [binding] = by_kind(docs, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == cluster_role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "rel-raftpod", "namespace": "ops"}
    ]
    roles = by_kind(docs, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["a", "b"]
    without_peering = {k: v for k, v in NAMESPACED.items() if k[0] != "kopf.dev"}
    assert all(granted(r["rules"]) == without_peering for r in roles)
    [deploy] = by_kind(docs, "Deployment")
    assert deploy["spec"]["replicas"] == 1
    args = deploy["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--standalone" in args
    assert "--namespace=a" in args and "--namespace=b" in args
    assert not by_kind(docs, "KopfPeering") and not by_kind(docs, "ClusterKopfPeering")


def test_namespaced_peering_objects() -> None:
    docs = render("watchNamespaces={a}")
    assert [
        (p["metadata"]["namespace"], p["metadata"]["name"]) for p in by_kind(docs, "KopfPeering")
    ] == [("a", "raftpod")]


@pytest.mark.parametrize(
    "sets",
    [(), ("peering.enabled=false",), ("watchNamespaces={a,b}",)],
    ids=["cluster-wide", "no-peering", "namespaced"],
)
def test_kopf_may_watch_crds_and_no_rule_uses_wildcards(sets: tuple[str, ...]) -> None:
    docs = render(*sets)
    roles = by_kind(docs, "ClusterRole") + by_kind(docs, "Role")
    [cluster_role] = by_kind(docs, "ClusterRole")
    crd_key = ("apiextensions.k8s.io", "customresourcedefinitions")
    assert granted(cluster_role["rules"])[crd_key] == CRDS[crd_key]
    for role in roles:
        for rule in role["rules"]:
            assert set(rule) == {"apiGroups", "resources", "verbs"}, rule
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[field], rule
    in_roles = [granted(r["rules"]).get(crd_key) for r in by_kind(docs, "Role")]
    assert not any(in_roles), "CRDs are cluster-scoped: a Role cannot grant them"


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("replicas=two", "at '/replicas': got string, want integer"),
        ("replica=3", "additional properties 'replica' not allowed"),  # a typo is not ignored
        ("metrics.port=70000", "at '/metrics/port'"),
        ("image.pullPolicy=Sometimes", "at '/image/pullPolicy'"),
        ("watchNamespaces={Bad_NS}", "at '/watchNamespaces/0'"),
        ("peering.name=Not/A/Name", "at '/peering/name'"),
    ],
)
def test_values_that_do_not_fit_are_refused_naming_the_field(value: str, says: str) -> None:
    args = [str(helm()), "template", "rel", str(CHART), "--kube-version", "1.31.0"]
    done = subprocess.run(
        [*args, "--set", value], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode != 0 and done.stdout == ""
    assert "values don't meet the specifications of the schema" in done.stderr
    assert says in done.stderr, done.stderr
