"""The operator's backup round against a real sidecar and a real S3 server, then a restore.

No Kubernetes here: `backup_round` is called as the timer would call it,
with the status it wrote last time, against a real ``raftpod-sidecar``
process whose admin API uploads to versitygw; the restore is the sidecar's
own ``--restore-from`` with the URL the operator's ConfigMap would carry.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import kopf
import pytest
from prometheus_client import CollectorRegistry
from raftcluster_env import C, drained, minimal_spec
from tests.backupstore.s3server import S3Server, s3_bucket, s3_server
from tests.sidecar.cluster import Cluster, Node, http, running

from raftpod_operator.handlers import backup_round
from raftpod_operator.manifests import restore_url
from raftpod_operator.metrics import OperatorMetrics
from raftpod_operator.sidecar_client import AdminClient
from raftpod_operator.spec import RaftClusterSpec, S3Source

__all__ = ["s3_bucket", "s3_server"]  # fixtures

pytestmark = pytest.mark.slow

PREFIX = "bk"
DATA = {f"key-{i}": f"value-{i}".encode() for i in range(5)}


def spec_for(server: S3Server, bucket: str, retain: int = 2) -> RaftClusterSpec:
    destination = {"bucket": bucket, "prefix": PREFIX, "endpoint": server.endpoint,
                   "region": "us-east-1"}  # fmt: skip
    return minimal_spec(
        backup={"schedule": "* * * * *", "retain": retain, "destination": {"s3": destination}}
    )


def body(annotation: str = "") -> kopf.Body:
    created = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    annotations = {"raftpod.io/backup-now": annotation} if annotation else {}
    return kopf.Body(
        {
            "apiVersion": "raftpod.io/v1alpha1",
            "kind": "RaftCluster",
            "metadata": {
                "name": C.name,
                "namespace": C.namespace,
                "uid": "uid-1",
                "creationTimestamp": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "annotations": annotations,
            },
        }
    )


@pytest.fixture
def source(tmp_path: Path, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[Node]:
    """A one-node cluster with a known data set, holding the S3 key pair as a pod would."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    with running(tmp_path / "source", 1) as cluster:
        leader = cluster.leader()
        for key, value in DATA.items():
            assert http("PUT", f"{leader.app}/v1/kv/{key}", data=value).status_code == 200
        yield leader


@pytest.fixture
async def client() -> AsyncIterator[AdminClient]:
    async with aiohttp.ClientSession() as session:
        yield AdminClient(session, token=None)


async def round_(
    metrics: OperatorMetrics,
    spec: RaftClusterSpec,
    status: dict[str, Any],
    client: AdminClient,
    leader: Node,
    *,
    annotation: str = "",
) -> dict[str, Any]:
    """One timer round; returns the merged status (as the merge patch would leave it)."""
    update = await backup_round(
        metrics, body(annotation), C, spec, status=status, client=client, leader_url=leader.admin
    )
    merged = {**status, **update}
    merged["backup"] = {k: v for k, v in update["backup"].items() if v is not None}
    return merged


def snap_keys(server: S3Server, bucket: str) -> list[str]:
    listing = server.client().list_objects_v2(Bucket=bucket, Prefix=f"{PREFIX}/")
    return sorted(o["Key"] for o in listing.get("Contents", []) if o["Key"].endswith(".snap"))


def sample(metrics: OperatorMetrics, name: str) -> float:
    value = metrics.registry.get_sample_value(name, {"namespace": "ns", "cluster": "c"})
    return float(value or 0.0)


async def test_schedule_on_demand_retention_and_status(
    source: Node,
    client: AdminClient,
    s3_server: S3Server,
    s3_bucket: str,
    events: asyncio.Queue[Any],
) -> None:
    metrics = OperatorMetrics(CollectorRegistry())
    spec = spec_for(s3_server, s3_bucket)
    status = await round_(metrics, spec, {"conditions": []}, client, source)
    last = status["lastBackup"]
    assert last["url"].startswith(f"s3://{s3_bucket}/{PREFIX}/ns/c/") and last["index"] > 0
    assert [k.rsplit("/", 1)[1] for k in snap_keys(s3_server, s3_bucket)] == [
        last["url"].rsplit("/", 1)[1]
    ]
    [condition] = status["conditions"]
    assert (condition["type"], condition["status"], condition["reason"]) == (
        "BackupSucceeded",
        "True",
        "Succeeded",
    )
    assert sample(metrics, "raftpod_backup_last_success_timestamp_seconds") > 0
    assert sample(metrics, "raftpod_backup_size_bytes") == last["sizeBytes"]
    # the same due time again (next timer round, or a restarted operator): no second backup
    again = await round_(OperatorMetrics(CollectorRegistry()), spec, status, client, source)
    assert again["lastBackup"] == last
    # two on-demand requests: three backups in all, retain 2 keeps exactly two
    for request in ("one", "two"):
        status = await round_(metrics, spec, status, client, source, annotation=request)
        assert status["backup"]["onDemandHandled"] == request
    assert len(snap_keys(s3_server, s3_bucket)) == 2
    reasons = [e.reason for e in drained(events)]
    assert reasons.count("BackupSucceeded") == 3 and "BackupFailed" not in reasons
    assert sample(metrics, "raftpod_backup_failures_total") == 0


async def test_a_failure_is_recorded_counted_and_retried(
    source: Node,
    client: AdminClient,
    s3_server: S3Server,
    events: asyncio.Queue[Any],
) -> None:
    metrics = OperatorMetrics(CollectorRegistry())
    spec = spec_for(s3_server, "no-such-bucket")
    status = await round_(metrics, spec, {"conditions": []}, client, source)
    assert "lastBackup" not in status
    assert status["backup"]["attempts"] == 1 and status["backup"]["pendingTime"]
    assert "no-such-bucket" in status["backup"]["lastError"]
    assert s3_server.secret_key not in str(status)
    assert sample(metrics, "raftpod_backup_failures_total") == 1
    [event] = drained(events)
    assert event.reason == "BackupFailed" and "will retry" in event.message
    # the retry waits for its delay: the next round at once does not call again
    status = await round_(metrics, spec, status, client, source)
    assert sample(metrics, "raftpod_backup_failures_total") == 1


@pytest.mark.usefixtures("events")  # kopf.info needs its posting context
async def test_restore_from_the_latest_backup_has_every_key_and_revision(
    source: Node,
    client: AdminClient,
    s3_server: S3Server,
    s3_bucket: str,
    tmp_path: Path,
) -> None:
    metrics = OperatorMetrics(CollectorRegistry())
    status = await round_(
        metrics, spec_for(s3_server, s3_bucket), {"conditions": []}, client, source
    )
    revisions = {
        key: http("GET", f"{source.app}/v1/kv/{key}").headers["X-Raftpod-Revision"] for key in DATA
    }
    url = restore_url(
        S3Source(bucket=s3_bucket, prefix=f"{PREFIX}/ns/c", endpoint=s3_server.endpoint)
    )
    with running(tmp_path / "restored", 1, extra_args=("--restore-from", url)) as restored:
        leader = restored.leader()
        assert leader.status()["commit_index"] >= status["lastBackup"]["index"]
        for key, value in DATA.items():
            answer = http("GET", f"{leader.app}/v1/kv/{key}")
            assert answer.content == value
            assert answer.headers["X-Raftpod-Revision"] == revisions[key]
        assert http("PUT", f"{leader.app}/v1/kv/after", data=b"restore").status_code == 200


def test_a_corrupted_backup_is_refused(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = s3_server.client()
    client.put_object(Bucket=s3_bucket, Key="bad/x.snap", Body=b"RAFTPOD-not-a-backup" * 10)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    url = restore_url(S3Source(bucket=s3_bucket, key="bad/x.snap", endpoint=s3_server.endpoint))
    cluster = Cluster(tmp_path / "broken", 1, extra_args=("--restore-from", url))
    [node] = cluster.nodes.values()
    try:
        node.start()
        assert node.proc is not None
        assert node.proc.wait(timeout=60) != 0  # it never serves
    finally:
        cluster.close()
    assert "--restore-from" in node.log_text()
