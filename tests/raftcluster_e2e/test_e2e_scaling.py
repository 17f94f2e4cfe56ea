"""Scaling a RaftCluster 3 -> 5 -> 3 while a client increments without pause.

The environment has three nodes, so this cluster asks for *preferred*
anti-affinity: five members with the default (required, per hostname) could
never be scheduled. Up: each new member joins as a learner, catches up and is
promoted, one at a time. Down: the highest ordinals leave the Raft
configuration before the StatefulSet shrinks, and their PVCs are deleted.
Last, deleting the cluster with ``storage.retainOnDelete: false`` deletes
every volume.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.kube import apis
from tests.kube.env import KubeEnv
from tests.raftcluster_e2e.counter_cluster import Clusters, counter_cluster, poll
from tests.raftcluster_e2e.writer import CounterWriter, check_writes

pytestmark = [pytest.mark.kube, pytest.mark.slow]

NAME = "scaler"
RUNNING_TIMEOUT = 180.0
RESIZE_TIMEOUT = 240.0


@pytest.fixture(scope="module")
def scaler(kube_env: KubeEnv, cluster_namespace: str) -> Iterator[Clusters]:
    clusters = Clusters(kube_env.api, cluster_namespace)
    clusters.create(
        counter_cluster(
            NAME, placement={"antiAffinity": "preferred"}, storage={"retainOnDelete": False}
        )
    )
    yield clusters
    if clusters.get(NAME) is not None:
        clusters.delete(NAME)
        poll(lambda: clusters.get(NAME) is None, "the RaftCluster to go", 60)


def claim_names(kube_env: KubeEnv, namespace: str) -> list[str]:
    claims = apis.core(kube_env.api).list_namespaced_persistent_volume_claim(namespace).items
    return sorted(c.metadata.name for c in claims if not c.metadata.deletion_timestamp)


def voters(status: dict[str, Any]) -> list[str]:
    return sorted(m["name"] for m in status["members"] if m["role"] in ("leader", "follower"))


def test_scale_three_to_five_to_three_under_writes(kube_env: KubeEnv, scaler: Clusters) -> None:
    scaler.wait_running(NAME, 3, timeout=RUNNING_TIMEOUT)
    with CounterWriter(lambda: scaler.ready_ips(NAME)) as writer:
        scaler.patch_spec(NAME, {"replicas": 5})
        up = scaler.wait_running(NAME, 5, timeout=RESIZE_TIMEOUT)
        assert voters(up) == [f"{NAME}-{i}" for i in range(5)], up["members"]
        at_five = time.monotonic() - writer.record.started
        scaler.patch_spec(NAME, {"replicas": 3})
        down = scaler.wait_running(NAME, 3, timeout=RESIZE_TIMEOUT)
        record = writer.stop()
    ips = {p.metadata.name: p.status.pod_ip for p in scaler.pods(NAME)}
    print(f"5 voters after {at_five:.0f}s, back to 3 after {record.stopped - record.started:.0f}s")
    print(f"remaining pods: {ips}")
    assert voters(down) == [f"{NAME}-{i}" for i in range(3)], down["members"]
    assert down["replicas"] == 3
    poll(lambda: len(scaler.pods(NAME)) == 3, "the StatefulSet to shrink to 3 pods", 60)
    expected = [f"data-{NAME}-{i}" for i in range(3)]
    poll(
        lambda: claim_names(kube_env, scaler.namespace) == expected,
        "the removed members' PVCs to be deleted",
        60,
    )
    check_writes(scaler, NAME, record, "scale 3->5->3")
    reasons = [e.reason for e in scaler.events(NAME)]
    assert reasons.count("Promote") == 2 and reasons.count("RemoveMember") == 2, reasons


def test_deletion_with_retain_off_deletes_the_volumes(kube_env: KubeEnv, scaler: Clusters) -> None:
    scaler.delete(NAME)
    poll(lambda: scaler.get(NAME) is None, "the finalizer to be released", 60)
    poll(
        lambda: not claim_names(kube_env, scaler.namespace),
        "storage.retainOnDelete: false to delete every PVC",
        60,
    )
