"""The operator's own Prometheus metrics, on a registry it is handed (no global collectors).

Reconcile duration and errors per handler, the actions the planners took, how
many clusters are mid-upgrade, and per cluster the backups' last success,
failures, duration and size; served by ``raftpod-operator run
--metrics-port``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class OperatorMetrics:
    """All operator metrics, registered on ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.reconcile_seconds = Histogram(
            "raftpod_operator_reconcile_seconds",
            "Time spent in one handler run.",
            ["handler"],
            registry=registry,
        )
        self.reconcile_errors = Counter(
            "raftpod_operator_reconcile_errors_total",
            "Handler runs that raised.",
            ["handler"],
            registry=registry,
        )
        self.actions = Counter(
            "raftpod_operator_actions_total",
            "Steps taken by the upgrade and scaling planners.",
            ["action"],
            registry=registry,
        )
        self.backups = Counter(
            "raftpod_operator_backups_total",
            "Scheduled backups the operator asked a leader for, by result.",
            ["result"],
            registry=registry,
        )
        per_cluster = ["namespace", "cluster"]
        self.backup_last_success = Gauge(
            "raftpod_backup_last_success_timestamp_seconds",
            "Unix time of the cluster's newest successful backup (from status after a restart).",
            per_cluster,
            registry=registry,
        )
        self.backup_failures = Counter(
            "raftpod_backup_failures_total",
            "Backup attempts (scheduled, retried or on demand) that failed.",
            per_cluster,
            registry=registry,
        )
        self.backup_seconds = Histogram(
            "raftpod_backup_duration_seconds",
            "Time from asking the leader for a backup to its answer.",
            per_cluster,
            buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
            registry=registry,
        )
        self.backup_size = Gauge(
            "raftpod_backup_size_bytes",
            "Stored size of the cluster's newest successful backup.",
            per_cluster,
            registry=registry,
        )
        self.upgrades_in_progress = Gauge(
            "raftpod_operator_upgrades_in_progress",
            "1 while a cluster's rolling upgrade is under way.",
            ["namespace", "cluster"],
            registry=registry,
        )

    @contextmanager
    def timed(self, handler: str) -> Iterator[None]:
        """Observe the duration of the block; count it as an error when it raises."""
        start = time.perf_counter()
        try:
            yield
        except Exception:
            self.reconcile_errors.labels(handler).inc()
            raise
        finally:
            self.reconcile_seconds.labels(handler).observe(time.perf_counter() - start)
