"""pytest fixtures for the Kubernetes environment, importable by other test areas.

`kube_env` starts one environment per session (skipping, or failing when
RAFTPOD_REQUIRE_KUBE is set, if it cannot run here); `kube_namespace` gives
each test its own namespace and prints the environment's logs if it failed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.kube import apis
from tests.kube.env import KubeEnv, skip_or_fail, unavailable_reason


def skip_or_fail_if_unavailable() -> None:
    """Skip with the reason, or fail loudly when CI requires the environment."""
    reason = unavailable_reason()
    if reason is not None:
        skip_or_fail(reason)


@pytest.fixture(scope="session")
def kube_env() -> Iterator[KubeEnv]:
    skip_or_fail_if_unavailable()
    env = KubeEnv.start()
    try:
        yield env
    finally:
        env.stop()


@pytest.fixture
def kube_namespace(kube_env: KubeEnv, request: pytest.FixtureRequest) -> Iterator[str]:
    core = apis.core(kube_env.api)
    name = f"t-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    yield name
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(kube_env.logs())
    core.delete_namespace(name)
