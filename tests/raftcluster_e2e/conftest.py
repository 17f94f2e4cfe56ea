"""Fixtures of the operator e2e tests: CRDs, the chart's objects, the operator, namespaces.

`kube_env` comes from the root conftest (one environment per session). The
CRDs and the chart's RBAC are installed once per session; the operator runs
once per session as the chart's ServiceAccount. Namespaces for clusters are
made here (module scope for the long scenario), deleted afterwards, and the
operator's log is printed when a test using them failed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.kube import apis
from tests.kube.env import KubeEnv
from tests.raftcluster_e2e.install import (
    ChartInstall,
    install_chart,
    install_crds,
    service_account_kubeconfig,
    uninstall_chart,
    uninstall_crds,
)
from tests.raftcluster_e2e.operator_host import ClusterDns, HostOperator


@pytest.fixture(scope="session")
def raft_crds(kube_env: KubeEnv) -> Iterator[None]:
    install_crds(kube_env.kubeconfig)
    yield
    uninstall_crds(kube_env.kubeconfig)


@pytest.fixture(scope="session")
def chart_install(kube_env: KubeEnv, raft_crds: None) -> Iterator[ChartInstall]:
    installed = install_chart(kube_env.api, kube_env.kubeconfig)
    yield installed
    uninstall_chart(kube_env.kubeconfig, installed)


@pytest.fixture(scope="session")
def raftpod_operator(
    kube_env: KubeEnv, chart_install: ChartInstall, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HostOperator]:
    """The operator, as the chart's ServiceAccount, resolving cluster DNS names."""
    root = tmp_path_factory.mktemp("operator")
    kubeconfig = service_account_kubeconfig(
        kube_env.api, kube_env.kubeconfig, chart_install.service_account, root / "kubeconfig"
    )
    dns = ClusterDns(kube_env.api, root / "hosts")
    dns.start()
    operator = HostOperator(
        chart_install.operator_args, kubeconfig, dns.path, root / "operator.log"
    )
    try:
        operator.wait_live()
        yield operator
    finally:
        code = operator.stop()
        dns.stop()
        print(f"operator exited with {code}; log tail:\n{operator.log_tail()}")


def _make_namespace(env: KubeEnv) -> str:
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    apis.core(env.api).create_namespace({"metadata": {"name": name}})
    return name


def _drop_namespace(env: KubeEnv, name: str, failed: bool, operator: HostOperator | None) -> None:
    if failed:
        print(env.logs())
        if operator is not None:
            print(f"----- operator log\n{operator.log_tail(200)}")
    apis.core(env.api).delete_namespace(name)


@pytest.fixture
def e2e_namespace(
    kube_env: KubeEnv, raft_crds: None, request: pytest.FixtureRequest
) -> Iterator[str]:
    """A namespace for one test (no operator: packaging tests)."""
    name = _make_namespace(kube_env)
    yield name
    report = getattr(request.node, "rep_call", None)
    _drop_namespace(kube_env, name, bool(report and report.failed), None)


@pytest.fixture(scope="module")
def cluster_namespace(
    kube_env: KubeEnv, raftpod_operator: HostOperator, request: pytest.FixtureRequest
) -> Iterator[str]:
    """A namespace for a module's RaftCluster, watched by the running operator."""
    name = _make_namespace(kube_env)
    yield name
    failed = any(
        getattr(getattr(item, "rep_call", None), "failed", False)
        for item in request.session.items
        if getattr(item, "module", None) is request.module
    )
    _drop_namespace(kube_env, name, failed, raftpod_operator)
