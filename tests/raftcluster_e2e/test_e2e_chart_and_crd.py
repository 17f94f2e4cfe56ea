"""Packaging against the real API server: the generated CRD, `kubectl get raft`, the chart.

These need no operator and no sidecar: what a user meets before anything runs
(kubectl's view of the resource, the API server's validation messages, a
chart that lints, renders and passes the server's own dry run).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from tests.kube.env import KubeEnv
from tests.raftcluster_e2e.counter_cluster import counter_cluster
from tests.raftcluster_e2e.install import (
    CHART,
    RAFT_CRD,
    apply_server_side,
    documents,
    render_chart,
)
from tests.raftcluster_e2e.tools import run_tool

pytestmark = pytest.mark.kube

PRINTER_COLUMNS = ["NAME", "READY", "LEADER", "PHASE", "TERM", "LAST-BACKUP", "AGE"]


def kubectl(env: KubeEnv, *args: str, stdin: str | None = None, check: bool = True) -> Any:
    return run_tool("kubectl", *args, kubeconfig=env.kubeconfig, stdin=stdin, check=check)


def test_generated_crd_is_the_charts_and_is_served_with_short_name(
    kube_env: KubeEnv, raft_crds: None
) -> None:
    listing = kubectl(kube_env, "api-resources", "--api-group=raftpod.io", "-o", "wide").stdout
    [row] = [line.split() for line in listing.splitlines()[1:] if line.strip()]
    assert row[:5] == ["raftclusters", "raft", "raftpod.io/v1alpha1", "true", "RaftCluster"]
    served = yaml.safe_load(kubectl(kube_env, "get", f"crd/{RAFT_CRD}", "-o", "yaml").stdout)
    [version] = served["spec"]["versions"]
    assert version["subresources"] == {
        "status": {},
        "scale": {
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.selector",
        },
    }


def test_kubectl_get_raft_shows_the_printer_columns(kube_env: KubeEnv, e2e_namespace: str) -> None:
    body = counter_cluster("shown")
    kubectl(kube_env, "apply", "-n", e2e_namespace, "-f", "-", stdin=yaml.safe_dump(body))
    table = kubectl(kube_env, "get", "raft", "-n", e2e_namespace).stdout.splitlines()
    assert table[0].split() == PRINTER_COLUMNS
    assert table[1].split()[0] == "shown"
    defaulted = yaml.safe_load(
        kubectl(kube_env, "get", "raft/shown", "-n", e2e_namespace, "-o", "yaml").stdout
    )
    assert defaulted["spec"]["placement"]["antiAffinity"] == "required"
    assert defaulted["spec"]["upgrade"] == {"paused": False, "maxLagEntries": 1000}
    assert defaulted["spec"]["storage"]["retainOnDelete"] is True
    kubectl(kube_env, "delete", "raft/shown", "-n", e2e_namespace, "--wait=false")


# (spec override, words the API server's message must contain)
INVALID_SPECS: dict[str, tuple[dict[str, Any], list[str]]] = {
    "zero replicas": ({"replicas": 0}, ["spec.replicas", "greater than or equal to 1"]),
    "negative replicas": ({"replicas": -1}, ["spec.replicas", "greater than or equal to 1"]),
    "anti-affinity enum": (
        {"placement": {"antiAffinity": "sometimes"}},
        ["spec.placement.antiAffinity", "Unsupported value", "required", "preferred"],
    ),
    "cron schedule": (
        {"backup": {"schedule": "every six hours"}},
        ["spec.backup.schedule", "should match"],
    ),
    "election range": (
        {"sidecar": {"electionTimeoutMs": "300:100"}},
        ["electionTimeoutMs must be lo:hi with lo < hi"],
    ),
    "restore key and prefix": (
        {"restore": {"from": {"s3": {"bucket": "b", "key": "k", "prefix": "p"}}}},
        ["give exactly one of key or prefix"],
    ),
    "storage size": ({"storage": {"size": "lots"}}, ["spec.storage.size", "should match"]),
}


@pytest.mark.parametrize("case", sorted(INVALID_SPECS))
def test_invalid_spec_is_rejected_with_a_clear_message(
    kube_env: KubeEnv, e2e_namespace: str, case: str
) -> None:
    override, words = INVALID_SPECS[case]
    body = counter_cluster("bad", **override)
    done = kubectl(
        kube_env, "create", "-n", e2e_namespace, "-f", "-", stdin=yaml.safe_dump(body), check=False
    )
    assert done.returncode != 0, f"{case} was accepted"
    assert "is invalid" in done.stderr, done.stderr
    for word in words:
        assert word in done.stderr, f"{word!r} missing from: {done.stderr}"


def test_restore_cannot_be_added_or_changed_after_creation(
    kube_env: KubeEnv, e2e_namespace: str
) -> None:
    restore = {"from": {"s3": {"bucket": "b", "key": "k1"}}}
    plain, restored = counter_cluster("plain"), counter_cluster("restored", restore=restore)
    for body in (plain, restored):
        kubectl(kube_env, "create", "-n", e2e_namespace, "-f", "-", stdin=yaml.safe_dump(body))
    patches = {
        "plain": ({"spec": {"restore": restore}}, "restore can only be given at creation"),
        "restored": (
            {"spec": {"restore": {"from": {"s3": {"bucket": "b", "key": "k2"}}}}},
            "restore is only used at creation and cannot change",
        ),
    }
    for name, (patch, message) in patches.items():
        done = kubectl(
            kube_env,
            "patch",
            f"raft/{name}",
            "-n",
            e2e_namespace,
            "--type=merge",
            "-p",
            json.dumps(patch),
            check=False,
        )
        assert done.returncode != 0 and message in done.stderr, done.stderr
    scaled = kubectl(kube_env, "scale", "raft/plain", "-n", e2e_namespace, "--replicas=5")
    assert "scaled" in scaled.stdout
    kubectl(kube_env, "delete", "raft", "--all", "-n", e2e_namespace, "--wait=false")


def test_helm_lint() -> None:
    done = run_tool("helm", "lint", str(CHART), "--strict", check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 chart(s) failed" in done.stdout


@pytest.mark.parametrize(
    "values",
    [(), ("watchNamespaces={WATCHED}",), ("peering.enabled=false", "metrics.enabled=false")],
    ids=["default", "watched-namespace", "standalone-no-metrics"],
)
def test_rendered_chart_passes_server_side_dry_run(
    kube_env: KubeEnv, raft_crds: None, e2e_namespace: str, values: tuple[str, ...]
) -> None:
    """Every object the chart renders, CRDs included, is accepted by the real API server."""
    sets = [v.replace("{WATCHED}", "{" + e2e_namespace + "}") for v in values]
    rendered = render_chart(kube_env.api, *sets, namespace=e2e_namespace, include_crds=True)
    docs = documents(rendered)
    kinds = {d["kind"] for d in docs}
    assert {"CustomResourceDefinition", "ServiceAccount", "Deployment"} <= kinds
    out = apply_server_side(kube_env.kubeconfig, docs, "--dry-run=server")
    lines = out.strip().splitlines()
    assert len(lines) == len(docs), out
    assert all("(server dry run)" in line for line in lines), out
