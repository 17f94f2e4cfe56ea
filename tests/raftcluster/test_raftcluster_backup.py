"""Backup scheduling from status alone: due times, retry spacing, what an attempt records."""

from __future__ import annotations

import datetime as dt

from raftcluster_env import NOW, C, minimal_spec

from raftpod_operator.backup import RETRY_AFTER, backup_due, base_url, record_backup
from raftpod_operator.crd import status_schema

SIX_HOURLY = "0 */6 * * *"
CREATED = dt.datetime(2026, 11, 26, 5, 0, tzinfo=dt.UTC)  # first slot at 06:00


def due(
    now: dt.datetime, last: dt.datetime | None = None, attempt: dt.datetime | None = None
) -> bool:
    return backup_due(SIX_HOURLY, created=CREATED, last_success=last, last_attempt=attempt, now=now)


def at(hour: int, minute: int = 0) -> dt.datetime:
    return CREATED.replace(hour=hour, minute=minute)


def test_first_backup_waits_for_the_first_slot_after_creation() -> None:
    assert not due(at(5, 59))
    assert due(at(6, 0))


def test_after_a_success_the_next_slot_counts() -> None:
    assert not due(at(11, 59), last=at(6, 1))
    assert due(at(12, 0), last=at(6, 1))
    # missed slots give one backup, not a burst: the success at 13:00 covers 12:00
    assert not due(at(13, 30), last=at(13, 0))


def test_a_failed_attempt_is_retried_after_a_pause() -> None:
    failed = at(6, 0)
    assert not due(failed + RETRY_AFTER - dt.timedelta(seconds=1), attempt=failed)
    assert due(failed + RETRY_AFTER, attempt=failed)
    # an attempt older than the last success does not hold the next one back
    assert due(at(12, 0), last=at(6, 2), attempt=at(6, 1))


def test_base_url_is_one_folder_per_cluster() -> None:
    spec = minimal_spec(backup={"destination": {"s3": {"bucket": "bk", "prefix": "/raft/"}}})
    assert spec.backup is not None and spec.backup.destination is not None
    assert spec.backup.destination.s3 is not None
    assert base_url(spec.backup.destination.s3, C) == "s3://bk/raft/ns/c"


SIDECAR_ANSWER = {"index": 42, "term": 3, "bytes": 1234, "sha256": "ab", "url": "s3://bk/x/1-42"}


def test_success_records_last_backup_and_condition() -> None:
    previous = {"conditions": [{"type": "Available", "status": "True"}]}
    update = record_backup(previous, result=SIDECAR_ANSWER, error=None, now=NOW)
    assert update["lastBackup"] == {
        "time": "2026-11-26T12:00:00Z",
        "url": "s3://bk/x/1-42",
        "index": 42,
        "sizeBytes": 1234,
    }
    assert update["lastBackupAttempt"] == "2026-11-26T12:00:00Z"
    types = [c["type"] for c in update["conditions"]]
    assert types == ["Available", "BackupSucceeded"]
    assert update["conditions"][-1]["status"] == "True"
    assert set(update) <= set(status_schema()["properties"])


def test_failure_keeps_the_last_success_and_flips_the_condition() -> None:
    ok = record_backup({}, result=SIDECAR_ANSWER, error=None, now=NOW)
    later = NOW + dt.timedelta(hours=6)
    failed = record_backup(ok, result=None, error="501 not_implemented", now=later)
    assert "lastBackup" not in failed  # the caller's status keeps the old one
    [condition] = failed["conditions"]
    assert (condition["status"], condition["reason"]) == ("False", "BackupFailed")
    assert condition["lastTransitionTime"] == "2026-11-26T18:00:00Z"
    again = record_backup({**ok, **failed}, result=None, error="again", now=later + RETRY_AFTER)
    assert again["conditions"][0]["lastTransitionTime"] == "2026-11-26T18:00:00Z"
