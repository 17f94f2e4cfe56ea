"""Scheduled backups: when the next one is due, where it goes, and how it shows in status.

The operator only decides and records; the leader's sidecar takes the snapshot
and uploads it (``POST /admin/backup {"url"}``), naming each backup itself
(``<UTC time>-<index>`` under the URL). Due-ness is derived from status alone:
a backup is due once a scheduled time has passed since the last success (or
since the cluster was created), and a failed attempt is retried after
``RETRY_AFTER`` rather than on every timer round.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from croniter import croniter

from raftpod_operator.manifests import Cluster
from raftpod_operator.spec import S3Destination
from raftpod_operator.status import set_condition

RETRY_AFTER = dt.timedelta(minutes=5)
BACKUP_TIMEOUT = 120.0  # seconds for one snapshot-and-upload call


def parse_time(text: Any) -> dt.datetime | None:
    """An RFC 3339 timestamp from status, or None."""
    if not isinstance(text, str) or not text:
        return None
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def stamp(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def backup_due(
    schedule: str,
    *,
    created: dt.datetime,
    last_success: dt.datetime | None,
    last_attempt: dt.datetime | None,
    now: dt.datetime,
) -> bool:
    """True when a scheduled time has passed since the last success and no retry is pending."""
    base = last_success or created
    next_time: dt.datetime = croniter(schedule, base).get_next(dt.datetime)
    if next_time > now:
        return False
    return last_attempt is None or last_attempt <= base or now - last_attempt >= RETRY_AFTER


def base_url(destination: S3Destination, cluster: Cluster) -> str:
    """``s3://bucket/prefix/<namespace>/<name>``: one folder of backups per cluster."""
    parts = [destination.prefix.strip("/"), cluster.namespace, cluster.name]
    return f"s3://{destination.bucket}/" + "/".join(p for p in parts if p)


def record_backup(
    status: Mapping[str, Any],
    *,
    result: Mapping[str, Any] | None,
    error: str | None,
    now: dt.datetime,
) -> dict[str, Any]:
    """What an attempt changes in ``status``: lastBackup on success, the condition, the time."""
    conditions = [c for c in status.get("conditions") or [] if c.get("type") != "BackupSucceeded"]
    previous = status.get("conditions") or []
    update: dict[str, Any] = {"lastBackupAttempt": stamp(now)}
    if result is not None:
        update["lastBackup"] = {
            "time": stamp(now),
            "url": str(result.get("url", "")),
            "index": int(result.get("index", 0)),
            "sizeBytes": int(result.get("bytes", 0)),
        }
        condition = set_condition(
            previous,
            "BackupSucceeded",
            status=True,
            reason="Uploaded",
            message=f"index {update['lastBackup']['index']} to {update['lastBackup']['url']}",
            now=now,
        )
    else:
        condition = set_condition(
            previous,
            "BackupSucceeded",
            status=False,
            reason="BackupFailed",
            message=error or "unknown error",
            now=now,
        )
    update["conditions"] = [*conditions, condition]
    return update
