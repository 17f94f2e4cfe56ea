"""The workload matrix of ``raftpod-bench compare`` and how one workload is run and measured.

Each workload is the same for both systems except the read consistency, where
the closest equivalents are paired: linearizable with linearizable, raftpod's
lease and stale reads with etcd's serializable reads. Clients spread over all
members (client i talks to member i mod 3), as an app per pod would with
raftpod and as etcd's client balancer does; the one-client rows are run twice,
against the leader and against a follower, since a lone client's latency
depends on which of the two it talks to. Every run is bounded by time and by
an operation count.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .clusters import Cluster, ResourceSampler
from .loadgen import LoadJob, LoadResult, Operation, run_generators
from .profiling import py_spy
from .targets import SystemName

SATURATED_CPU = 0.9  # a generator process above this share of a core may be the bottleneck
PREFILL_CLIENTS = 16

Members = Literal["all", "leader", "follower"]


@dataclass(frozen=True)
class Workload:
    """One row of the matrix."""

    name: str
    op: Operation
    clients: int
    value_bytes: int = 100
    keys: int = 1000
    raftpod_read: str = "linearizable"
    etcd_read: str = "linearizable"
    members: Members = "all"
    """Whom the clients talk to: every member in turn, or only the leader or only one
    follower (as found when the workload starts)."""

    def read_mode(self, system: SystemName) -> str:
        return self.raftpod_read if system == "raftpod" else self.etcd_read


@dataclass(frozen=True)
class Preset:
    """How much of the matrix to run and for how long."""

    name: str
    workloads: tuple[Workload, ...]
    duration_s: float
    warmup_s: float
    max_ops: int
    failover_trials: int
    transfer_trials: int
    catchup_entries: int
    snapshot_keys: int  # 4 KiB values written before the snapshot-install run; 0 skips it


SEQUENTIAL_LEADER = Workload("write-seq-leader", "write", 1, members="leader")
SEQUENTIAL_FOLLOWER = Workload("write-seq-follower", "write", 1, members="follower")
WRITES_16 = Workload("write-16", "write", 16)
WRITES_64 = Workload("write-64", "write", 64)
WRITES_256 = Workload("write-256", "write", 256)
WRITES_64_4K = Workload("write-64-4k", "write", 64, value_bytes=4096)
READS_LINEARIZABLE = Workload("read-linearizable-64", "read", 64)
READS_LEASE = Workload("read-lease-64", "read", 64, raftpod_read="lease", etcd_read="serializable")
READS_STALE = Workload("read-stale-64", "read", 64, raftpod_read="stale", etcd_read="serializable")

PRESETS = {
    "full": Preset(
        "full",
        (
            SEQUENTIAL_LEADER,
            SEQUENTIAL_FOLLOWER,
            WRITES_16,
            WRITES_64,
            WRITES_256,
            WRITES_64_4K,
            READS_LINEARIZABLE,
            READS_LEASE,
            READS_STALE,
        ),
        duration_s=10.0,
        warmup_s=1.0,
        max_ops=500_000,
        failover_trials=7,
        transfer_trials=7,
        catchup_entries=100_000,
        snapshot_keys=12_000,
    ),
    "quick": Preset(
        "quick",
        (
            SEQUENTIAL_LEADER,
            SEQUENTIAL_FOLLOWER,
            WRITES_16,
            WRITES_64,
            WRITES_256,
            READS_LINEARIZABLE,
            READS_LEASE,
        ),
        duration_s=2.5,
        warmup_s=0.5,
        max_ops=100_000,
        failover_trials=5,
        transfer_trials=3,
        catchup_entries=2_000,
        snapshot_keys=1_000,
    ),
    "smoke": Preset(
        "smoke",
        (
            SEQUENTIAL_LEADER,
            SEQUENTIAL_FOLLOWER,
            Workload("write-16", "write", 16),
            Workload("read-linearizable-16", "read", 16),
            Workload("read-lease-16", "read", 16, raftpod_read="lease", etcd_read="serializable"),
        ),
        duration_s=1.0,
        warmup_s=0.2,
        max_ops=20_000,
        failover_trials=1,
        transfer_trials=1,
        catchup_entries=200,
        snapshot_keys=200,
    ),
}


def prefill(cluster: Cluster, keys: int, value_bytes: int) -> LoadResult:
    """Write every key once so that reads find values."""
    job = LoadJob(
        system=cluster.system,
        endpoints=cluster.endpoints,
        op="write",
        clients=PREFILL_CLIENTS,
        duration_s=60.0,
        max_ops=keys,
        value_bytes=value_bytes,
        keys=keys,
        key_order="sequential",
    )
    return run_generators(job)


def run_workload(
    cluster: Cluster, workload: Workload, preset: Preset, profile_dir: Path | None = None
) -> dict[str, Any]:
    """Run ``workload`` against ``cluster``; a second generator process if one saturated.
    With ``profile_dir``, raftpod nodes are recorded by py-spy meanwhile (which costs CPU,
    so the row says it was profiled)."""
    endpoints, member = client_endpoints(cluster, workload.members)
    job = LoadJob(
        system=cluster.system,
        endpoints=endpoints,
        op=workload.op,
        clients=workload.clients,
        duration_s=preset.duration_s,
        max_ops=preset.max_ops,
        value_bytes=workload.value_bytes,
        keys=workload.keys,
        read_mode=workload.read_mode(cluster.system),
        warmup_s=preset.warmup_s,
    )
    profiled = profile_dir is not None and cluster.system == "raftpod"
    processes = 1
    while True:
        profiler = (
            py_spy(cluster.pids(), profile_dir, workload.name, preset.warmup_s + preset.duration_s)
            if profiled and profile_dir is not None
            else contextlib.nullcontext()
        )
        with profiler, ResourceSampler(cluster.pids()) as sampler:
            result = run_generators(job, processes)
        saturated = result.max_process_cpu > SATURATED_CPU
        if not saturated or processes > 1 or workload.clients < 2:
            break
        processes = 2
    row = describe(workload, job, result, sampler, saturated)
    row["profiled"] = profiled
    row["members"] = workload.members
    row["member"] = member
    return row


def client_endpoints(cluster: Cluster, members: Members) -> tuple[tuple[str, ...], str | None]:
    """The URLs the clients use, and the member's name when it is only one."""
    if members == "all":
        return cluster.endpoints, None
    index = cluster.current_leader()
    if members == "follower":
        index = (index + 1) % len(cluster.members)
    return (cluster.endpoints[index],), cluster.members[index].name


def describe(
    workload: Workload,
    job: LoadJob,
    result: LoadResult,
    sampler: ResourceSampler,
    saturated: bool,
) -> dict[str, Any]:
    """The JSON record of one measured workload."""
    usage = sampler.usage()
    server_cores = sum(u.cpu_cores for u in usage)
    generator_cores = result.cpu_s / sampler.wall_s
    return {
        "name": workload.name,
        "op": workload.op,
        "clients": workload.clients,
        "value_bytes": workload.value_bytes,
        "keys": workload.keys,
        "read_mode": job.read_mode if workload.op == "read" else None,
        "duration_s": round(result.elapsed_s, 3),
        "ops": result.ops,
        "ops_per_s": round(result.ops_per_s, 1),
        "latency_ms": {
            label: _ms(result.latency.percentile(q))
            for label, q in (("p50", 0.5), ("p99", 0.99), ("p999", 0.999))
        },
        "errors": dict(result.errors),
        "error_count": sum(result.errors.values()),
        "generator": {
            "processes": result.processes,
            "cpu_s": round(result.cpu_s, 3),
            "max_process_cpu": round(result.max_process_cpu, 3),
            "saturated": saturated,
        },
        # Busy cores machine-wide minus the servers' and the generators': other tenants.
        "other_cpu_cores": round(
            max(0.0, sampler.machine_cores - server_cores - generator_cores), 3
        ),
        "server": {
            "cpu_cores": round(server_cores, 3),
            "nodes": [
                {
                    "name": u.name,
                    "cpu_cores": round(u.cpu_cores, 3),
                    "rss_max_mib": round(u.rss_max_mib, 1),
                }
                for u in usage
            ],
        },
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)
