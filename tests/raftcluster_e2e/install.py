"""Installing raftpod the way a user does: the CRDs, then the Helm chart's rendered objects.

Everything the chart renders is applied with server-side apply except the
operator Deployment: pods here cannot reach the API server (it listens on the
host's loopback), so the e2e runs the Deployment's own container arguments as
a host process instead (operator_host.py), logged in as the chart's
ServiceAccount with a token from the TokenRequest API. Missing RBAC rules in
the chart therefore fail these tests, as they would fail a real install.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from tests.kube import apis
from tests.kube.binaries import REPO_ROOT
from tests.raftcluster_e2e.tools import run_tool

CHART = REPO_ROOT / "charts" / "raftpod"
CRDS = REPO_ROOT / "crds"
CHART_CRDS = CHART / "crds"
OPERATOR_NAMESPACE = "raftpod-system"
RELEASE = "raftpod"
RAFT_CRD = "raftclusters.raftpod.io"
PEERING_CRDS = ("clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev")
TOKEN_SECONDS = 3600

Json = dict[str, Any]


def server_version(api: client.ApiClient) -> str:
    """The API server's version, e.g. v1.35.4 (helm template defaults to an old one)."""
    return str(client.VersionApi(api).get_code().git_version)


def render_chart(
    api: client.ApiClient,
    *sets: str,
    namespace: str = OPERATOR_NAMESPACE,
    include_crds: bool = False,
) -> str:
    """`helm template` of the chart into `namespace` with `--set` values, for this server."""
    args = ["template", RELEASE, str(CHART), "--namespace", namespace]
    args += ["--kube-version", server_version(api)]
    if include_crds:
        args.append("--include-crds")
    for value in sets:
        args += ["--set", value]
    return run_tool("helm", *args).stdout


def documents(text: str) -> list[Json]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def apply_server_side(kubeconfig: Path, docs: list[Json], *extra: str) -> str:
    """`kubectl apply --server-side` of `docs`; its output (one line per object)."""
    text = yaml.safe_dump_all(docs, sort_keys=False)
    args = ["apply", "--server-side", "--field-manager=raftpod-e2e", *extra, "-f", "-"]
    return run_tool("kubectl", *args, kubeconfig=kubeconfig, stdin=text).stdout


def install_crds(kubeconfig: Path) -> None:
    """The generated RaftCluster CRD (crds/) and kopf's peering CRDs (the chart's crds/)."""
    docs = [doc for path in sorted(CRDS.glob("*.yaml")) for doc in documents(path.read_text())]
    docs += documents((CHART_CRDS / "kopf-peering.yaml").read_text())
    apply_server_side(kubeconfig, docs)
    names = [f"crd/{n}" for n in (RAFT_CRD, *PEERING_CRDS)]
    run_tool(
        "kubectl",
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        *names,
        kubeconfig=kubeconfig,
    )


def uninstall_crds(kubeconfig: Path) -> None:
    names = [f"crd/{n}" for n in (RAFT_CRD, *PEERING_CRDS)]
    run_tool(
        "kubectl", "delete", "--ignore-not-found", "--wait=false", *names, kubeconfig=kubeconfig
    )


@dataclass(frozen=True)
class ChartInstall:
    """What the chart installed, and how its Deployment would run the operator."""

    service_account: str
    operator_args: tuple[str, ...]
    cluster_scoped: tuple[str, ...]  # kind/name of objects outside the namespace


def install_chart(api: client.ApiClient, kubeconfig: Path) -> ChartInstall:
    """Apply every rendered object but the Deployment; remember the Deployment's args."""
    core = apis.core(api)
    core.create_namespace({"metadata": {"name": OPERATOR_NAMESPACE}})
    docs = documents(render_chart(api))
    [deployment] = [d for d in docs if d["kind"] == "Deployment"]
    rest = [d for d in docs if d["kind"] != "Deployment"]
    apply_server_side(kubeconfig, rest)
    pod_spec = deployment["spec"]["template"]["spec"]
    [container] = pod_spec["containers"]
    return ChartInstall(
        service_account=pod_spec["serviceAccountName"],
        operator_args=tuple(container["command"][1:] + container["args"]),
        cluster_scoped=tuple(
            f"{d['kind'].lower()}/{d['metadata']['name']}"
            for d in rest
            if "namespace" not in d["metadata"]
        ),
    )


def uninstall_chart(kubeconfig: Path, install: ChartInstall) -> None:
    run_tool(
        "kubectl",
        "delete",
        "--ignore-not-found",
        "--wait=false",
        f"namespace/{OPERATOR_NAMESPACE}",
        *install.cluster_scoped,
        kubeconfig=kubeconfig,
    )


def service_account_kubeconfig(
    api: client.ApiClient, admin_kubeconfig: Path, service_account: str, path: Path
) -> Path:
    """A kubeconfig that logs in as `service_account` with a TokenRequest token."""
    request = {"spec": {"expirationSeconds": TOKEN_SECONDS}}
    token = (
        apis.core(api)
        .create_namespaced_service_account_token(service_account, OPERATOR_NAMESPACE, request)
        .status.token
    )
    admin = yaml.safe_load(admin_kubeconfig.read_text())
    cluster = admin["clusters"][0]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": service_account, "user": {"token": token}}],
        "contexts": [
            {"name": "operator", "context": {"cluster": cluster["name"], "user": service_account}}
        ],
        "current-context": "operator",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path
