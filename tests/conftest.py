"""Fixtures shared across test areas, imported once so a session has one of each.

The Kubernetes environment (`kube_env`, session-scoped) serves tests/kube and
tests/raftcluster_e2e alike: importing it from two folders' conftests would
register two fixtures and start two environments in one run.
"""

from __future__ import annotations

from collections.abc import Generator

import pytest

from tests.kube.fixtures import kube_env, kube_namespace

__all__ = ["kube_env", "kube_namespace"]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report on the item, so fixtures can tell a test failed."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
