"""Failover, leadership-transfer and catch-up times, measured on a running cluster.

Failover: with a background write load on every member, kill -9 the leader
and time until the first write succeeds through a surviving member (probes on
every survivor at once; the earliest success counts). The killed member is
restarted and the cluster waited for before the next trial. Transfer: ask the
leader to hand over to the next member and time the call, which returns when
the transfer is done (raftpod's ``/admin/transfer-leadership``, etcd's
``MoveLeader`` through ``/v3/maintenance/transfer-leadership``). Catch-up:
kill -9 a follower, write N entries through the others, restart it and time
until it has applied everything the leader had committed. Snapshot install
(raftpod only): a follower's disk is replaced the supported way (removed,
wiped, rejoined as a learner) and its recovery from the leader's snapshot is
timed.
"""

from __future__ import annotations

import statistics
import threading
import time
import urllib.request
from typing import Any

from .clusters import HTTP_ERRORS, POLL_S, Cluster, ClusterError, RaftpodCluster
from .loadgen import Generators, LoadJob, run_generators
from .targets import target_for

BACKGROUND_CLIENTS = 8
LOAD_RAMP_S = 0.5  # background load runs this long before the kill
PROBE_TIMEOUT_S = 0.5
PROBE_PAUSE_S = 0.005
PROBE_DEADLINE_S = 15.0
LEADER_DEADLINE_S = 10.0
CATCHUP_CLIENTS = 64
CATCHUP_WRITE_DEADLINE_S = 300.0
CATCHUP_DEADLINE_S = 120.0
SNAPSHOT_VALUE_BYTES = 4096


def _probe_first_write(cluster: Cluster, survivors: list[int], deadline: float) -> float | None:
    """Monotonic time of the first successful write through any survivor, or None."""
    target = target_for(cluster.system)
    done = threading.Event()
    successes: list[float] = []
    lock = threading.Lock()

    def probe(index: int) -> None:
        endpoint = cluster.members[index].client_url
        attempt = 0
        while not done.is_set() and time.monotonic() < deadline:
            attempt += 1
            call = target.put(endpoint, f"bench/failover-{index}-{attempt}", b"x")
            request = urllib.request.Request(call.url, data=call.body, method=call.method)
            request.add_header("Content-Type", call.content_type)
            try:
                with urllib.request.urlopen(request, timeout=PROBE_TIMEOUT_S) as response:
                    response.read()
            except HTTP_ERRORS:
                done.wait(PROBE_PAUSE_S)
                continue
            with lock:
                successes.append(time.monotonic())
            done.set()

    threads = [threading.Thread(target=probe, args=(i,), daemon=True) for i in survivors]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return min(successes) if successes else None


def measure_failover(cluster: Cluster, trials: int) -> dict[str, Any]:
    """kill -9 the leader under write load ``trials`` times; seconds to the first write."""
    times: list[float] = []
    failed = 0
    for trial in range(trials):
        leader = cluster.current_leader()
        background = Generators(
            LoadJob(
                system=cluster.system,
                endpoints=cluster.endpoints,
                op="write",
                clients=BACKGROUND_CLIENTS,
                duration_s=LOAD_RAMP_S + PROBE_DEADLINE_S,
                max_ops=1_000_000,
                request_timeout_s=1.0,
                seed=100 + trial,
            )
        )
        background.start()
        try:
            time.sleep(LOAD_RAMP_S)  # the load runs a while before the kill
            killed_at = time.monotonic()
            cluster.kill(leader)
            survivors = [i for i in range(len(cluster.members)) if i != leader]
            first = _probe_first_write(cluster, survivors, killed_at + PROBE_DEADLINE_S)
        finally:
            background.stop()
        if first is None:
            failed += 1
        else:
            times.append(first - killed_at)
        cluster.restart(leader)
    return _summary(times, failed)


def measure_transfer(cluster: Cluster, trials: int) -> dict[str, Any]:
    """Hand leadership to the next member ``trials`` times; seconds per completed transfer."""
    times: list[float] = []
    failed = 0
    for _ in range(trials):
        leader = cluster.current_leader()
        to = (leader + 1) % len(cluster.members)
        started = time.monotonic()
        try:
            cluster.transfer_leadership(to)
        except (*HTTP_ERRORS, ClusterError):
            failed += 1
            continue
        elapsed = time.monotonic() - started
        if _wait_leader(cluster, to):
            times.append(elapsed)
        else:
            failed += 1
    return _summary(times, failed)


def measure_catchup(cluster: Cluster, entries: int) -> dict[str, Any]:
    """Seconds from restarting a follower that missed ``entries`` writes to it applying them."""
    leader = cluster.current_leader()
    follower = (leader + 1) % len(cluster.members)
    cluster.kill(follower)
    try:
        written = run_generators(
            LoadJob(
                system=cluster.system,
                endpoints=tuple(
                    m.client_url for i, m in enumerate(cluster.members) if i != follower
                ),
                op="write",
                clients=CATCHUP_CLIENTS,
                duration_s=CATCHUP_WRITE_DEADLINE_S,
                max_ops=entries,
                seed=7,
            )
        )
        indexes = cluster.log_indexes(cluster.current_leader())
        if indexes is None:
            raise ClusterError(f"{cluster.system}: the leader did not report its commit index")
        target = indexes[0]
    finally:
        started = time.monotonic()
        cluster.spawn(follower)
    seconds = _wait_applied(cluster, follower, target, started)
    cluster.wait_ready()
    return {
        "entries": written.ops,
        "errors": dict(written.errors),
        "target_index": target,
        "seconds": seconds,
    }


def measure_snapshot_install(cluster: RaftpodCluster, keys: int) -> dict[str, Any]:
    """Write ``keys`` 4 KiB values, snapshot the leader, replace a follower by a blank node
    that joins as a learner, and time until it has applied the leader's commit index (the
    log behind the snapshot is compacted, so only a snapshot gets it there). MB/s is the
    snapshot's size over that time, process start and the join call included."""
    written = run_generators(
        LoadJob(
            system=cluster.system,
            endpoints=cluster.endpoints,
            op="write",
            clients=CATCHUP_CLIENTS,
            duration_s=CATCHUP_WRITE_DEADLINE_S,
            max_ops=keys,
            value_bytes=SNAPSHOT_VALUE_BYTES,
            keys=keys,
            key_order="sequential",
        )
    )
    leader = cluster.current_leader()
    term = cluster.term(leader)
    size = cluster.take_snapshot(leader)
    # a snapshot taken on the leader's event loop once cost it its leadership
    elections = cluster.term(leader) - term
    indexes = cluster.log_indexes(leader)
    if indexes is None:
        raise ClusterError(f"{cluster.system}: the leader did not report its commit index")
    follower = (leader + 1) % len(cluster.members)
    started = time.monotonic()
    cluster.rejoin_blank(follower, via=leader)
    seconds = _wait_applied(cluster, follower, indexes[0], started)
    cluster.wait_ready()
    return {
        "values": written.ops,
        "errors": dict(written.errors),
        "snapshot_bytes": size,
        "elections_during_snapshot": elections,
        "seconds": seconds,
        "mb_per_s": None if not seconds else round(size / 1e6 / seconds, 2),
    }


def _wait_applied(cluster: Cluster, index: int, target: int, started: float) -> float | None:
    """Seconds from ``started`` until member ``index`` applied ``target``; None at deadline."""
    deadline = started + CATCHUP_DEADLINE_S
    while time.monotonic() < deadline:
        indexes = cluster.log_indexes(index)
        if indexes is not None and indexes[1] >= target:
            return round(time.monotonic() - started, 3)
        time.sleep(POLL_S)
    return None


def _wait_leader(cluster: Cluster, index: int) -> bool:
    deadline = time.monotonic() + LEADER_DEADLINE_S
    while time.monotonic() < deadline:
        if cluster.leader_index() == index:
            return True
        time.sleep(POLL_S)
    return False


def _summary(times: list[float], failed: int) -> dict[str, Any]:
    return {
        "trials_s": [round(t, 4) for t in times],
        "median_s": round(statistics.median(times), 4) if times else None,
        "failed": failed,
    }
