"""What only S3 has: multipart uploads, object metadata, credentials, endpoints, SSE."""

from __future__ import annotations

import filecmp
import hashlib
import io
import json
import logging
import os
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from raftpod_sidecar.backupstore import (
    BackupAccessError,
    BackupCorruptError,
    BackupError,
    BackupNotFoundError,
    Credentials,
    SnapshotInfo,
    open_store,
)
from raftpod_sidecar.backupstore.s3store import S3Store
from raftpod_sidecar.raft.messages import Member
from tests.backupstore.backends import StepClock
from tests.backupstore.s3server import S3Server

pytestmark = pytest.mark.s3

MIB = 1 << 20
INFO = SnapshotInfo(
    "prod", index=77, term=4, members=(Member("n1", "n1:7000", True),), cluster_uid="u-9"
)


def random_file(path: Path, size: int) -> Path:
    with open(path, "wb") as fh:
        for _ in range(size // MIB):
            fh.write(os.urandom(MIB))
    return path


def test_multipart_round_trip_with_bounded_memory(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    source = random_file(tmp_path / "snapshot", 16 * MIB)
    store = open_store(
        s3_server.url(s3_bucket, "mp", part_size="5MiB"),
        credentials=s3_server.credentials(),
    )
    with open(source, "rb") as fh:
        tracemalloc.start()
        try:
            ref = store.put(INFO, fh)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    print(f"peak traced memory of a 16 MiB put in 5 MiB parts: {peak / MIB:.1f} MiB")
    assert peak < 3 * 5 * MIB, f"put held {peak / MIB:.1f} MiB for 5 MiB parts"
    head = s3_server.client().head_object(Bucket=s3_bucket, Key=f"mp/{ref.key}")
    assert head["ETag"].strip('"').endswith("-4")  # 16 MiB + header in 5 MiB parts
    assert head["ContentLength"] == ref.size > 16 * MIB
    restored = tmp_path / "restored"
    with open(restored, "wb") as out:
        store.get(None, out, expect_cluster="prod")
    assert filecmp.cmp(restored, source, shallow=False)


def test_object_carries_metadata(s3_server: S3Server, s3_bucket: str) -> None:
    store = open_store(s3_server.url(s3_bucket, "meta"), credentials=s3_server.credentials())
    ref = store.put(INFO, io.BytesIO(b"snapshot bytes"))
    head = s3_server.client().head_object(Bucket=s3_bucket, Key=f"meta/{ref.key}")
    metadata = head["Metadata"]
    assert metadata["cluster"] == "prod" and metadata["cluster-uid"] == "u-9"
    assert (metadata["index"], metadata["term"], metadata["members"]) == ("77", "4", "n1=voter")
    assert metadata["sha256"] == hashlib.sha256(b"snapshot bytes").hexdigest()
    assert metadata["raftpod-format"] == "1" and metadata["compression"] == "none"
    assert metadata["raftpod-version"] and metadata["created"].endswith("Z")
    raw = s3_server.client().get_object(Bucket=s3_bucket, Key="meta/prod/latest.json")
    manifest = json.loads(raw["Body"].read())
    assert f"prod/{manifest['object']}" == ref.key
    assert (manifest["index"], manifest["sha256"]) == (77, metadata["sha256"])


def test_metadata_that_disagrees_with_the_object_is_refused(
    s3_server: S3Server, s3_bucket: str
) -> None:
    """Another (valid) backup's bytes under this object's metadata: swapped, not trusted."""
    store = open_store(s3_server.url(s3_bucket, "swap"), credentials=s3_server.credentials())
    first = store.put(INFO, io.BytesIO(b"first"))
    second = store.put(INFO, io.BytesIO(b"second"))
    client = s3_server.client()
    other = client.get_object(Bucket=s3_bucket, Key=f"swap/{second.key}")["Body"].read()
    metadata = client.head_object(Bucket=s3_bucket, Key=f"swap/{first.key}")["Metadata"]
    client.put_object(Bucket=s3_bucket, Key=f"swap/{first.key}", Body=other, Metadata=metadata)
    with pytest.raises(BackupCorruptError, match="object metadata says sha256"):
        store.get(first, io.BytesIO())


def test_wrong_credentials_fail_clearly_without_the_secret(
    s3_server: S3Server, s3_bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "wr0ng-Secret-" + s3_server.secret_key[:6]
    caplog.set_level(logging.DEBUG)
    store = open_store(
        s3_server.url(s3_bucket, "denied"), credentials=Credentials(s3_server.access_key, secret)
    )
    with pytest.raises(BackupAccessError) as info:
        store.put(INFO, io.BytesIO(b"x" * 1000))
    message = str(info.value)
    assert "SignatureDoesNotMatch" in message and f"s3://{s3_bucket}/denied/prod/" in message
    assert "check the access key" in message
    for text in (message, repr(info.value), caplog.text):
        assert secret not in text and s3_server.secret_key not in text
    assert any(r.name.startswith("botocore") for r in caplog.records)  # DEBUG logs were on
    assert s3_server.client().list_objects_v2(Bucket=s3_bucket).get("KeyCount", 0) == 0


def test_default_credential_chain_and_endpoint_from_the_environment(
    s3_server: S3Server, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the operator sets on the pod: AWS_* variables, and a URL without options."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    store = open_store(f"s3://{s3_bucket}/env/ns/name")
    ref = store.put(INFO, io.BytesIO(b"from env"))
    assert ref.url.startswith(f"s3://{s3_bucket}/env/ns/name/prod/")
    out = io.BytesIO()
    store.get(None, out)
    assert out.getvalue() == b"from env"


@pytest.mark.parametrize(
    ("options", "headers"),
    [
        pytest.param({"sse": "AES256"}, {"x-amz-server-side-encryption": "AES256"}, id="aes256"),
        pytest.param(
            {"sse": "aws:kms", "kms_key_id": "alias/raftpod"},
            {
                "x-amz-server-side-encryption": "aws:kms",
                "x-amz-server-side-encryption-aws-kms-key-id": "alias/raftpod",
            },
            id="kms",
        ),
    ],
)
def test_server_side_encryption_setting_is_sent(
    s3_server: S3Server, s3_bucket: str, options: dict[str, str], headers: dict[str, str]
) -> None:
    """versitygw does not encrypt, so check the request headers it was sent."""
    store = open_store(
        s3_server.url(s3_bucket, "sse", **options), credentials=s3_server.credentials()
    )
    sent: list[dict[str, str]] = []

    def capture(request: Any, **_: Any) -> None:
        sent.append({k.lower(): v.decode() if isinstance(v, bytes) else v
                     for k, v in request.headers.items()})  # fmt: skip

    assert isinstance(store, S3Store)
    store.client.meta.events.register("before-send.s3.PutObject", capture)
    ref = store.put(INFO, io.BytesIO(b"secret data" * 100))
    assert len(sent) == 2  # the object, then the manifest
    for request_headers in sent:
        assert headers.items() <= request_headers.items()
    out = io.BytesIO()
    store.get(ref, out)
    assert out.getvalue() == b"secret data" * 100


def test_a_missing_bucket_is_not_found(s3_server: S3Server) -> None:
    store = open_store(s3_server.url("no-such-bucket-x"), credentials=s3_server.credentials())
    with pytest.raises(BackupNotFoundError, match="s3://no-such-bucket-x"):
        store.put(INFO, io.BytesIO(b"x"))
    with pytest.raises(BackupNotFoundError):
        store.latest()


class ChangingSource(io.BytesIO):
    """A snapshot that changes under the backup: the second pass reads other bytes."""

    def seek(self, offset: int, whence: int = 0) -> int:
        result = super().seek(offset, whence)
        if offset == 0 and whence == 0 and self.getbuffer()[0] == 0:
            self.getbuffer()[0] = 1
        return result


def test_a_failed_multipart_upload_leaves_nothing(s3_server: S3Server, s3_bucket: str) -> None:
    store = open_store(
        s3_server.url(s3_bucket, "abort", part_size="5MiB"), credentials=s3_server.credentials()
    )
    with pytest.raises(BackupError, match="changed while it was being backed up"):
        store.put(INFO, ChangingSource(bytes(11 * MIB)))
    client = s3_server.client()
    assert client.list_objects_v2(Bucket=s3_bucket).get("KeyCount", 0) == 0
    assert client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []


def test_an_unreachable_endpoint_is_a_clear_error(tmp_path: Path) -> None:
    from tests.ports import free_port

    url = f"s3://bucket/x?endpoint=http://127.0.0.1:{free_port()}"
    store = open_store(url, credentials=Credentials("AKIA", "sekrit-value"), clock=StepClock())
    with pytest.raises(BackupError, match="cannot reach the S3 endpoint") as info:
        store.latest()
    assert "sekrit-value" not in str(info.value)


def test_no_credentials_anywhere_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    store = open_store("s3://bucket/x?endpoint=http://127.0.0.1:9&region=us-east-1")
    with pytest.raises(BackupAccessError, match="no usable S3 credentials"):
        store.put(INFO, io.BytesIO(b"x"))
