"""A real S3-compatible server (versitygw, posix backend) for tests.

``S3Server.start(dir)`` runs ``versitygw`` on a free port of ``host``
(127.0.0.1 by default; the kube e2e tests pass the pod network's gateway) with
a random root key pair, waits until it answers ListBuckets, and ``stop()``
ends it (SIGTERM, bounded wait, SIGKILL). The fixtures ``s3_server``
(one per session) and ``s3_bucket`` (a fresh bucket per test) are importable
from here by other test areas; without the binary they skip with the reason,
or fail when RAFTPOD_REQUIRE_KUBE is set.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from raftpod_sidecar.backupstore import Credentials
from tests.kube.binaries import binary, missing
from tests.kube.env import skip_or_fail
from tests.kube.procs import LoggedProcess, ProcessError, wait_until
from tests.ports import free_port

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

READY_TIMEOUT = 30.0
START_ATTEMPTS = 3


@dataclass
class S3Server:
    host: str
    port: int
    access_key: str
    secret_key: str
    root: Path
    process: LoggedProcess

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    @classmethod
    def start(cls, workdir: Path, host: str = "127.0.0.1") -> S3Server:
        """Start versitygw serving ``workdir/data``; retries on a lost port race."""
        root = workdir / "data"
        root.mkdir(parents=True, exist_ok=True)
        access_key = "RAFTPODTEST" + secrets.token_hex(4).upper()
        secret_key = secrets.token_urlsafe(24)
        last: Exception | None = None
        for attempt in range(START_ATTEMPTS):
            port = free_port()
            argv = [str(binary("versitygw")), "--port", f"{host}:{port}", "--quiet"]
            argv += ["posix", str(root)]
            # Keys by environment, not argv, so they never show in `ps`.
            env = {"ROOT_ACCESS_KEY_ID": access_key, "ROOT_SECRET_ACCESS_KEY": secret_key}
            process = LoggedProcess(
                "versitygw", argv, workdir / f"versitygw-{attempt}.log", env=env
            )
            server = cls(host, port, access_key, secret_key, root, process)
            try:
                wait_until(server._ready, READY_TIMEOUT, f"versitygw on {host}:{port}")
                return server
            except (ProcessError, TimeoutError) as exc:
                last = exc
                process.stop()
        raise ProcessError(f"versitygw did not start after {START_ATTEMPTS} attempts: {last}")

    def _ready(self) -> bool:
        self.process.check_alive()
        try:
            self.client(attempts=1).list_buckets()
        except (BotoCoreError, ClientError):
            return False
        return True

    def credentials(self) -> Credentials:
        return Credentials(self.access_key, self.secret_key)

    def client(self, *, secret_key: str | None = None, attempts: int = 3) -> S3Client:
        """A boto3 client of the root account (or with another secret, to be refused)."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
            region_name="us-east-1",
            config=Config(
                s3={"addressing_style": "path"},
                retries={"mode": "standard", "max_attempts": attempts},
                connect_timeout=2,
                read_timeout=20,
            ),
        )

    def create_bucket(self) -> str:
        name = f"rp-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def url(self, bucket: str, prefix: str = "", **options: str) -> str:
        """``s3://bucket/prefix?endpoint=...`` plus any other URL options."""
        query = "&".join(f"{k}={v}" for k, v in {"endpoint": self.endpoint, **options}.items())
        return f"s3://{bucket}/{prefix}?{query}" if prefix else f"s3://{bucket}?{query}"

    def stop(self) -> None:
        self.process.stop()


def skip_or_fail_without_s3() -> None:
    """Skip when versitygw is not built, unless RAFTPOD_REQUIRE_KUBE demands it."""
    if not missing(("versitygw",)):
        return
    skip_or_fail("versitygw missing: run scripts/testbin build versitygw")


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    skip_or_fail_without_s3()
    server = S3Server.start(tmp_path_factory.mktemp("s3server"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> str:
    """A fresh, empty bucket on the session's server."""
    return s3_server.create_bucket()
