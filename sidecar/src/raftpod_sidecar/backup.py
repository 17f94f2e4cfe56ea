"""The node's side of backups: snapshot in, backup out, and back for ``--restore-from``.

Storage (``file://`` directories and ``s3://`` buckets, the object format, the
"latest" manifest, retention, verification) lives in :mod:`.backupstore`;
this module only turns the node's ``Snapshot`` into a backup and a verified
backup back into metadata and snapshot bytes, off the event loop.
"""

from __future__ import annotations

import asyncio
import io
from typing import Any

from .backupstore import (
    BackupError,
    BackupUrlError,
    SnapshotInfo,
    fetch_bytes,
    open_store,
    parse_url,
)
from .raft.messages import Snapshot

__all__ = ["DEFAULT_CLUSTER", "BackupError", "BackupUrlError", "check_url", "read_backup"]
__all__ += ["write_backup"]

DEFAULT_CLUSTER = "raftpod"
"""The backup folder name when neither the request nor ``--cluster-id`` names the cluster."""


def check_url(url: str) -> None:
    """Raise :class:`BackupUrlError` (a 400) if ``url`` is not a usable backup location."""
    parse_url(url)


def _write(url: str, snapshot: Snapshot, info: SnapshotInfo, retain: int | None) -> dict[str, Any]:
    store = open_store(url)
    ref = store.put(info, io.BytesIO(snapshot.data))
    deleted = store.retain(info.cluster, retain) if retain else []
    assert ref.meta is not None
    return {
        **ref.meta.to_json(),
        "url": ref.url,
        "key": ref.key,
        "bytes": ref.size,
        "deleted": [r.url for r in deleted],
    }


async def write_backup(
    url: str,
    snapshot: Snapshot,
    node_id: str,
    *,
    cluster: str = DEFAULT_CLUSTER,
    cluster_uid: str = "",
    retain: int | None = None,
) -> dict[str, Any]:
    """Store ``snapshot`` under ``url`` (then keep the newest ``retain``); the backup's facts."""
    info = SnapshotInfo.from_snapshot_meta(
        snapshot.meta, cluster=cluster, cluster_uid=cluster_uid, node=node_id
    )
    return await asyncio.to_thread(_write, url, snapshot, info, retain)


def read_backup(url: str) -> tuple[dict[str, Any], bytes]:
    """The metadata and verified snapshot bytes of the backup ``url`` names (or the latest)."""
    meta, data = fetch_bytes(url)
    return meta.to_json(), data
