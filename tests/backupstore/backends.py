"""One test harness over both stores: open a store, and touch its raw objects.

The raw side edits stored objects behind the store's back (corrupt, truncate,
delete), through the filesystem or through a plain S3 client, so the tests can
check what ``get`` refuses.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from raftpod_sidecar.backupstore import Compression, open_store, zstd_available
from raftpod_sidecar.backupstore.store import ObjectStore
from tests.backupstore.s3server import S3Server

needs_zstd = pytest.mark.skipif(
    not zstd_available(), reason="zstandard is not installed (pip install 'raftpod[zstd]')"
)
COMPRESSIONS = [
    pytest.param(c, marks=needs_zstd) if c is Compression.ZSTD else c for c in Compression
]
"""Every compression, zstd skipped (with the reason) where the optional package is absent."""

START = dt.datetime(2026, 11, 26, 8, 0, 0, tzinfo=dt.UTC)


@dataclass
class StepClock:
    """A clock the test moves by hand (backups "in the same second" are then certain)."""

    now: dt.datetime = START

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


@dataclass
class Backend:
    kind: str
    tmp: Path
    server: S3Server | None = None
    bucket: str = ""
    clock: StepClock = field(default_factory=StepClock)

    def url(self, prefix: str = "backups", **options: str) -> str:
        if self.server is None:
            query = "&".join(f"{k}={v}" for k, v in options.items())
            return f"file://{self.tmp}/{prefix}" + (f"?{query}" if query else "")
        return self.server.url(self.bucket, prefix, **options)

    def open(self, prefix: str = "backups", **options: str) -> ObjectStore:
        creds = self.server.credentials() if self.server else None
        return open_store(self.url(prefix, **options), credentials=creds, clock=self.clock)

    def read(self, key: str) -> bytes:
        """The raw bytes at ``key`` (relative to the bucket or the temp dir)."""
        if self.server is None:
            return (self.tmp / key).read_bytes()
        return self.server.client().get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def write(self, key: str, data: bytes) -> None:
        """Replace the bytes at ``key``, keeping its S3 user metadata."""
        if self.server is None:
            (self.tmp / key).write_bytes(data)
            return
        client = self.server.client()
        metadata = client.head_object(Bucket=self.bucket, Key=key)["Metadata"]
        client.put_object(Bucket=self.bucket, Key=key, Body=data, Metadata=metadata)

    def delete(self, key: str) -> None:
        if self.server is None:
            (self.tmp / key).unlink()
        else:
            self.server.client().delete_object(Bucket=self.bucket, Key=key)


def make_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """``request.param`` is "file" or "s3"; S3 fixtures are only started for "s3"."""
    if request.param == "file":
        return Backend("file", tmp_path)
    server: S3Server = request.getfixturevalue("s3_server")
    return Backend("s3", tmp_path, server, request.getfixturevalue("s3_bucket"))
