"""Backups to a real S3 server and a restore after the cluster, pods and disks are gone.

The control plane, kubelet, operator (as the chart's ServiceAccount) and
sidecars are the real ones (conftest); the S3 server is versitygw listening
on the pod network's gateway, so the sidecars reach it like an in-cluster
MinIO. The tests share one source cluster and run in file order: a schedule
fires (every minute), an on-demand backup, retention, wrong credentials,
then the source is deleted with its PVCs and a new cluster restores from the
latest backup; last, a corrupted object is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families

from tests.backupstore.s3server import S3Server, skip_or_fail_without_s3
from tests.kube import apis
from tests.kube.env import KubeEnv
from tests.raftcluster_e2e.counter_cluster import (
    GROUP,
    PLURAL,
    VERSION,
    Clusters,
    Json,
    app_call,
    counter_cluster,
    poll,
)
from tests.raftcluster_e2e.operator_host import HostOperator

pytestmark = [pytest.mark.kube, pytest.mark.slow]

SOURCE, RESTORED, BAD_CREDS, BROKEN = "src", "restored", "badcreds", "broken"
PREFIX = "bk"
EVERY_MINUTE = "* * * * *"
RETAIN = 2
RUNNING_TIMEOUT = 240.0
BACKUP_TIMEOUT = 150.0  # the next minute, a timer round, and the upload
WRITES = 5


@pytest.fixture(scope="module")
def s3(kube_env: KubeEnv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    skip_or_fail_without_s3()
    server = S3Server.start(tmp_path_factory.mktemp("e2e-s3"), host=kube_env.network.gateway)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def bucket(s3: S3Server) -> str:
    return s3.create_bucket()


@pytest.fixture(scope="module")
def clusters(kube_env: KubeEnv, cluster_namespace: str, s3: S3Server) -> Clusters:
    core = apis.core(kube_env.api)
    for name, secret in (("s3-good", s3.secret_key), ("s3-bad", "not-the-secret")):
        core.create_namespaced_secret(
            cluster_namespace,
            {
                "metadata": {"name": name},
                "stringData": {"accessKeyId": s3.access_key, "secretAccessKey": secret},
            },
        )
    return Clusters(kube_env.api, cluster_namespace)


def s3_settings(s3: S3Server, bucket: str, secret: str) -> Json:
    return {"bucket": bucket, "endpoint": s3.endpoint, "region": "us-east-1",
            "credentialsSecret": secret}  # fmt: skip


def backed_up_cluster(name: str, replicas: int, s3: S3Server, bucket: str, secret: str) -> Json:
    destination = {**s3_settings(s3, bucket, secret), "prefix": PREFIX}
    return counter_cluster(
        name,
        replicas=replicas,
        storage={"size": "64Mi", "retainOnDelete": False},
        backup={"schedule": EVERY_MINUTE, "retain": RETAIN, "destination": {"s3": destination}},
    )


def condition(status: Json, type_: str) -> Json:
    return next((c for c in status.get("conditions") or [] if c["type"] == type_), {})


def handled(request: str) -> Callable[[Json], bool]:
    """A status check: the on-demand backup annotated ``request`` has been handled."""
    return lambda s: (s.get("backup") or {}).get("onDemandHandled") == request


def snap_keys(s3: S3Server, bucket: str, folder: str) -> list[str]:
    listing = s3.client().list_objects_v2(Bucket=bucket, Prefix=folder + "/")
    return sorted(o["Key"] for o in listing.get("Contents", []) if o["Key"].endswith(".snap"))


def metric(text: str, name: str, namespace: str, cluster: str) -> float:
    """One sample of the operator's /metrics (0 when absent)."""
    wanted = {"namespace": namespace, "cluster": cluster}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == wanted:
                return float(sample.value)
    return 0.0


def annotate(clusters: Clusters, name: str, value: str) -> None:
    """``kubectl annotate raft <name> raftpod.io/backup-now=<value> --overwrite``."""
    client.CustomObjectsApi(clusters.api).patch_namespaced_custom_object(
        GROUP, VERSION, clusters.namespace, PLURAL, name,
        {"metadata": {"annotations": {"raftpod.io/backup-now": value}}},
    )  # fmt: skip


@pytest.fixture(scope="module")
def source(clusters: Clusters, s3: S3Server, bucket: str) -> Iterator[Json]:
    body = clusters.create(backed_up_cluster(SOURCE, 3, s3, bucket, "s3-good"))
    yield body
    if clusters.get(SOURCE) is not None:
        clusters.delete(SOURCE)


def test_the_schedule_fires_and_status_and_metrics_show_it(
    clusters: Clusters, source: Json, raftpod_operator: HostOperator, s3: S3Server, bucket: str
) -> None:
    clusters.wait_running(SOURCE, 3, timeout=RUNNING_TIMEOUT)
    ip = poll(lambda: clusters.ready_ips(SOURCE), "a ready app pod", 60)[0]
    values = [int(app_call(ip, "/increment", post=True)["value"]) for _ in range(WRITES)]
    assert values == list(range(1, WRITES + 1))
    status = clusters.wait_status(
        SOURCE,
        lambda s: condition(s, "BackupSucceeded").get("status") == "True",
        "a scheduled backup",
        BACKUP_TIMEOUT,
    )
    last = status["lastBackup"]
    folder = f"{PREFIX}/{clusters.namespace}/{SOURCE}"
    assert last["url"].startswith(f"s3://{bucket}/{folder}/") and last["url"].endswith(".snap")
    assert last["index"] > 0 and last["sizeBytes"] > 0
    assert status["backup"]["handledTime"]
    assert snap_keys(s3, bucket, folder)
    text = raftpod_operator.metrics()
    ns = clusters.namespace
    assert metric(text, "raftpod_backup_last_success_timestamp_seconds", ns, SOURCE) > 0
    assert metric(text, "raftpod_backup_size_bytes", ns, SOURCE) == last["sizeBytes"]


def test_on_demand_backups_and_retention_keeps_exactly_n(
    clusters: Clusters, source: Json, s3: S3Server, bucket: str
) -> None:
    ip = poll(lambda: clusters.ready_ips(SOURCE), "a ready app pod", 60)[0]
    for _ in range(WRITES):
        app_call(ip, "/increment", post=True)
    assert int(app_call(ip, "/count")["value"]) == 2 * WRITES
    for request in ("first", "second"):
        annotate(clusters, SOURCE, request)
        clusters.wait_status(SOURCE, handled(request), f"on-demand backup {request!r}", 60)
    reasons = [e.reason for e in clusters.events(SOURCE)]
    assert reasons.count("BackupSucceeded") >= RETAIN + 1, reasons
    folder = f"{PREFIX}/{clusters.namespace}/{SOURCE}"
    # a scheduled backup may be between its upload and its pruning: poll, bounded
    poll(lambda: len(snap_keys(s3, bucket, folder)) == RETAIN, f"exactly {RETAIN} backups", 30)
    status = clusters.status(SOURCE)
    assert status["lastBackup"]["url"].rsplit("/", 1)[1] in {
        k.rsplit("/", 1)[1] for k in snap_keys(s3, bucket, folder)
    }


def test_wrong_credentials_turn_backup_succeeded_false_within_a_period(
    clusters: Clusters, raftpod_operator: HostOperator, s3: S3Server, bucket: str
) -> None:
    clusters.create(backed_up_cluster(BAD_CREDS, 1, s3, bucket, "s3-bad"))
    try:
        clusters.wait_running(BAD_CREDS, 1, timeout=RUNNING_TIMEOUT)
        status = clusters.wait_status(
            BAD_CREDS,
            lambda s: condition(s, "BackupSucceeded").get("status") == "False",
            "BackupSucceeded False",
            BACKUP_TIMEOUT,
        )
        verdict = condition(status, "BackupSucceeded")
        assert verdict["reason"] == "BackupFailed", verdict
        assert "lastBackup" not in status
        failures = metric(
            raftpod_operator.metrics(), "raftpod_backup_failures_total", clusters.namespace,
            BAD_CREDS,
        )  # fmt: skip
        assert failures >= 1
        assert s3.secret_key not in str(status)
        assert "BackupFailed" in [e.reason for e in clusters.events(BAD_CREDS)]
    finally:
        clusters.delete(BAD_CREDS)


def test_restore_from_latest_after_the_cluster_and_its_disks_are_gone(
    kube_env: KubeEnv, clusters: Clusters, source: Json, s3: S3Server, bucket: str
) -> None:
    annotate(clusters, SOURCE, "final")  # the counter is final: this backup holds it
    final = clusters.wait_status(
        SOURCE,
        lambda s: (s.get("backup") or {}).get("onDemandHandled") == "final",
        "the final backup",
        60,
    )["lastBackup"]
    clusters.delete(SOURCE)
    core = apis.core(kube_env.api)
    ns = clusters.namespace

    def gone() -> bool:
        claims = core.list_namespaced_persistent_volume_claim(ns).items
        return clusters.get(SOURCE) is None and not clusters.pods(SOURCE) and not claims

    poll(gone, "the source cluster, its pods and PVCs to go", 120)
    folder = f"{PREFIX}/{ns}/{SOURCE}"
    restore = {"from": {"s3": {**s3_settings(s3, bucket, "s3-good"), "prefix": folder}}}
    clusters.create(counter_cluster(RESTORED, replicas=3, restore=restore))
    try:
        clusters.wait_status(
            RESTORED, lambda s: s.get("phase") == "Restoring", "phase Restoring", 120
        )
        status = clusters.wait_running(RESTORED, 3, timeout=RUNNING_TIMEOUT + 120)
        assert status["restore"]["completedTime"]
        assert status["commitIndex"] >= final["index"]
        ips = poll(lambda: len(i := clusters.ready_ips(RESTORED)) == 3 and i, "3 apps", 60)
        assert {int(app_call(ip, "/count")["value"]) for ip in ips} == {2 * WRITES}
        assert int(app_call(ips[0], "/increment", post=True)["value"]) == 2 * WRITES + 1
        reasons = [e.reason for e in clusters.events(RESTORED)]
        assert "Restored" in reasons, reasons
    finally:
        clusters.delete(RESTORED)


def test_a_corrupted_backup_is_refused_and_nothing_serves(
    clusters: Clusters, s3: S3Server, bucket: str
) -> None:
    client = s3.client()
    [key, *_] = snap_keys(s3, bucket, f"{PREFIX}/{clusters.namespace}/{SOURCE}")
    data = bytearray(client.get_object(Bucket=bucket, Key=key)["Body"].read())
    data[-10] ^= 0xFF  # in the snapshot bytes, after the header
    client.put_object(Bucket=bucket, Key="corrupt/bad.snap", Body=bytes(data))
    source = {**s3_settings(s3, bucket, "s3-good"), "key": "corrupt/bad.snap"}
    clusters.create(counter_cluster(BROKEN, replicas=3, restore={"from": {"s3": source}}))
    try:
        status = clusters.wait_status(
            BROKEN, lambda s: s.get("phase") == "Failed", "phase Failed", RUNNING_TIMEOUT
        )
        degraded = condition(status, "Degraded")
        assert degraded["reason"] == "RestoreFailed", degraded
        assert "corrupt/bad.snap" in degraded["message"]
        assert [p.metadata.name for p in clusters.pods(BROKEN)] == [f"{BROKEN}-0"]
        assert not clusters.ready_ips(BROKEN)
        assert "Failed" in [e.reason for e in clusters.events(BROKEN)]
    finally:
        clusters.delete(BROKEN)
