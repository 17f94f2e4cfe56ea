"""Fetching a backup for ``--restore-from``: verified before anyone sees it.

The URL names one object (``.../<name>.snap``) or a location meaning "latest
there" (``s3://bucket/prefix``, ``file:///dir``, or one cluster's folder). The
snapshot bytes are checked against the header's SHA-256, size, format version
and, when given, the expected cluster, before they are returned or renamed
into place; a failure raises and leaves nothing behind.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

from .filestore import fsync_dir
from .format import BackupMeta
from .store import resolve
from .url import Credentials


def fetch_to_file(
    url: str,
    dest: Path,
    *,
    expect_cluster: str | None = None,
    credentials: Credentials | None = None,
) -> BackupMeta:
    """Download and verify the backup at ``url`` into ``dest`` (fsynced, renamed into place)."""
    store, key = resolve(url, credentials=credentials)
    scratch = dest.with_name(f".{dest.name}.partial")
    try:
        with open(scratch, "wb") as fh:
            meta = store.get(key, fh, expect_cluster=expect_cluster)
            fh.flush()
            os.fsync(fh.fileno())
        scratch.rename(dest)
        fsync_dir(dest.parent)
    finally:
        scratch.unlink(missing_ok=True)
    return meta


def fetch_bytes(
    url: str,
    *,
    expect_cluster: str | None = None,
    credentials: Credentials | None = None,
) -> tuple[BackupMeta, bytes]:
    """The verified metadata and snapshot bytes of the backup at ``url`` (held in memory)."""
    store, key = resolve(url, credentials=credentials)
    sink = io.BytesIO()
    meta = store.get(key, sink, expect_cluster=expect_cluster)
    return meta, sink.getvalue()
