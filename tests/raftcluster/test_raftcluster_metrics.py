"""The operator's own metrics live on the registry they are handed."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from raftpod_operator.metrics import OperatorMetrics


def test_timed_counts_duration_and_errors_on_its_own_registry() -> None:
    registry = CollectorRegistry()
    metrics = OperatorMetrics(registry)
    with metrics.timed("timer"):
        pass
    with pytest.raises(RuntimeError), metrics.timed("timer"):
        raise RuntimeError("boom")
    metrics.upgrades_in_progress.labels("ns", "c").set(1)
    text = generate_latest(registry).decode()
    assert 'raftpod_operator_reconcile_seconds_count{handler="timer"} 2.0' in text
    assert 'raftpod_operator_reconcile_errors_total{handler="timer"} 1.0' in text
    assert 'raftpod_operator_upgrades_in_progress{cluster="c",namespace="ns"} 1.0' in text
    # a second instance on another registry does not collide (no global collectors)
    OperatorMetrics(CollectorRegistry())
