"""The thin handlers' own decisions that need no API server: invalid specs, revision targets."""

from __future__ import annotations

import asyncio
from typing import Any

import kopf
import pytest
from raftcluster_env import C, cluster, drained

from raftpod_operator.handlers import _formed, _parse_or_fail, _target_revision

TEMPLATE = {"spec": {"containers": [{"name": "app", "image": "a"}]}}


def body(spec: dict[str, Any]) -> kopf.Body:
    return kopf.Body(
        {
            "apiVersion": "raftpod.io/v1alpha1",
            "kind": "RaftCluster",
            "metadata": {"name": "c", "namespace": "ns", "uid": "u1"},
            "spec": spec,
        }
    )


async def test_invalid_spec_sets_status_posts_event_and_is_permanent(
    events: asyncio.Queue[Any],
) -> None:
    spec = {"template": TEMPLATE, "replicas": 0}
    patch = kopf.Patch()
    with pytest.raises(kopf.PermanentError, match=r"spec\.replicas"):
        _parse_or_fail(body(spec), spec, patch)
    assert patch["status"]["phase"] == "Failed"
    assert patch["status"]["conditions"][0]["reason"] == "InvalidSpec"
    [event] = drained(events)
    assert (event.type, event.reason) == ("Warning", "InvalidSpec")
    assert "must be at least 1" in event.message


async def test_cert_manager_issuer_is_reported_as_unsupported(events: asyncio.Queue[Any]) -> None:
    spec = {"template": TEMPLATE, "tls": {"issuer": "cert-manager"}}
    with pytest.raises(kopf.PermanentError, match="cert-manager"):
        _parse_or_fail(body(spec), spec, kopf.Patch())


async def test_even_replicas_warn_but_proceed(events: asyncio.Queue[Any]) -> None:
    spec = {"template": TEMPLATE, "replicas": 4}
    patch = kopf.Patch()
    assert _parse_or_fail(body(spec), spec, patch).replicas == 4
    assert not patch
    [event] = drained(events)
    assert (event.type, event.reason) == ("Warning", "EvenReplicas")


def test_target_revision_waits_for_the_statefulset_controller() -> None:
    sts = {
        "metadata": {"generation": 3},
        "status": {"observedGeneration": 2, "updateRevision": "a"},
    }
    assert _target_revision(sts) is None
    sts["status"]["observedGeneration"] = 3
    assert _target_revision(sts) == "a"


def test_cluster_counts_as_formed_once_every_bootstrap_voter_is_in_the_leaders_config() -> None:
    _, view = cluster(3)
    assert _formed(C, view, 3)
    assert not _formed(C, view, 5)  # c-3 and c-4 have not joined the configuration yet
    _, leaderless = cluster(3, leader=None)
    assert not _formed(C, leaderless, 3)
