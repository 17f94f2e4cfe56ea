"""The node's Prometheus metrics, in a registry of its own.

A per-node ``CollectorRegistry`` (not prometheus_client's global one) keeps
metrics of two nodes in one process (tests, benchmarks) apart. Names follow
SPEC §3: ``raft_*`` for consensus, ``raftpod_*`` for the sidecar around it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from .raft.messages import Role

CONTENT_TYPE = CONTENT_TYPE_LATEST

ROLE_NAMES = {
    Role.FOLLOWER: "follower",
    Role.PRE_CANDIDATE: "pre_candidate",
    Role.CANDIDATE: "candidate",
    Role.LEADER: "leader",
    Role.LEARNER: "learner",
}

_FAST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class _CounterSource(Collector):
    """Exposes plain int counters kept elsewhere (the transport's), read at scrape time."""

    def __init__(self, prefix: str, source: Callable[[], Mapping[str, int]], what: str) -> None:
        self.prefix = prefix
        self.source = source
        self.what = what

    def collect(self) -> Iterator[CounterMetricFamily]:
        for name, value in sorted(self.source().items()):
            yield CounterMetricFamily(f"{self.prefix}_{name}", f"{self.what}: {name}", value=value)


class NodeMetrics:
    """Every metric of one node; the driver and the HTTP layers update them."""

    def __init__(self, node: str) -> None:
        self.node = node
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.current_term = Gauge("raft_current_term", "Current Raft term", registry=r)
        self.state = Gauge(
            "raft_state", "1 for the node's current role", ["node", "state"], registry=r
        )
        self.commit_index = Gauge("raft_commit_index", "Highest committed index", registry=r)
        self.applied_index = Gauge("raft_applied_index", "Highest applied index", registry=r)
        self.last_log_index = Gauge("raft_last_log_index", "Last index in the log", registry=r)
        self.election_timeout = Gauge(
            "raft_election_timeout_seconds", "Election timeout range", ["bound"], registry=r
        )
        self.leader_changes = Counter(
            "raft_leader_changes_total", "Times the known leader changed", registry=r
        )
        self.proposals = Counter(
            "raft_proposals_total", "Proposals by outcome", ["result"], registry=r
        )
        self.append_entries_sent = Counter(
            "raft_append_entries_sent_total", "AppendEntries messages sent", registry=r
        )
        self.wal_fsync = Histogram(
            "raft_wal_fsync_seconds",
            "Time to persist one Ready durably",
            buckets=_FAST_BUCKETS,
            registry=r,
        )
        self.apply_seconds = Histogram(
            "raft_apply_seconds",
            "Time to apply one batch of committed entries",
            buckets=_FAST_BUCKETS,
            registry=r,
        )
        self.snapshots = Counter("raft_snapshot_total", "Snapshots taken", registry=r)
        self.snapshot_seconds = Histogram(
            "raft_snapshot_duration_seconds", "Time to take and store a snapshot", registry=r
        )
        self.snapshot_bytes = Gauge("raft_snapshot_bytes", "Size of the last snapshot", registry=r)
        self.snapshots_installed = Counter(
            "raft_snapshot_installed_total", "Snapshots received from the leader", registry=r
        )
        self.backup_last_success = Gauge(
            "raftpod_backup_last_success_timestamp_seconds",
            "Unix time of the last good backup",
            registry=r,
        )
        self.backup_failures = Counter(
            "raftpod_backup_failures_total", "Failed backups", registry=r
        )
        self.http_requests = Counter(
            "raftpod_http_requests_total",
            "HTTP requests by route and code",
            ["route", "code"],
            registry=r,
        )
        self.http_seconds = Histogram(
            "raftpod_http_request_seconds",
            "HTTP request latency",
            ["route"],
            buckets=_FAST_BUCKETS,
            registry=r,
        )
        # labelled children resolved once: ``labels()`` costs more than the update
        self.proposal_results = {
            result: self.proposals.labels(result)
            for result in ("ok", "failed", "dropped", "timeout")
        }
        self._request_counts: dict[tuple[str, int], Counter] = {}
        self._request_seconds: dict[str, Histogram] = {}
        for role in ROLE_NAMES.values():
            self.state.labels(node, role).set(0)

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        """Count and time one HTTP request (``route`` is a template: few distinct keys)."""
        counter = self._request_counts.get((route, status))
        if counter is None:
            counter = self._request_counts[route, status] = self.http_requests.labels(
                route, str(status)
            )
        counter.inc()
        timer = self._request_seconds.get(route)
        if timer is None:
            timer = self._request_seconds[route] = self.http_seconds.labels(route)
        timer.observe(seconds)

    def add_counters(self, prefix: str, source: Callable[[], Mapping[str, int]], what: str) -> None:
        """Export counters owned by another part, e.g. ``raftpod_peer_malformed_total``."""
        self.registry.register(_CounterSource(prefix, source, what))

    def set_election_timeout(self, lo_ms: int, hi_ms: int) -> None:
        self.election_timeout.labels("min").set(lo_ms / 1000)
        self.election_timeout.labels("max").set(hi_ms / 1000)

    def set_role(self, role: Role) -> None:
        for known, name in ROLE_NAMES.items():
            self.state.labels(self.node, name).set(1 if known == role else 0)

    def exposition(self) -> bytes:
        return bytes(generate_latest(self.registry))
