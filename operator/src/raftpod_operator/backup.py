"""Scheduled and on-demand backups: what is due, where it goes, and what status says.

The operator decides and records; the leader's sidecar snapshots and uploads
(``POST /admin/backup {"url", "cluster", "cluster_uid", "retain"}``), names
each object and prunes to ``retain``. Everything here is pure: the caller
passes ``now`` and the state it read from ``status.backup``, so the same
inputs always give the same decision.

* One firing per due time: ``status.backup.handledTime`` is the newest
  scheduled time that is done with (succeeded, or gave up after
  ``MAX_ATTEMPTS``). A time is due when the schedule has one after it (or
  after creation) at or before ``now``; missed slots give one backup, not a
  burst. Status survives operator restarts, and kopf peering lets one replica
  act, so a restart or a second replica never fires the same time twice
  (unless the operator dies between the sidecar's answer and the status write).
* A failed firing is retried after ``RETRY_DELAYS``; a newer due time
  supersedes it.
* On demand: any new value of the ``raftpod.io/backup-now`` annotation asks
  for one backup (one attempt); the handled value is kept in status.
* ``BackupSucceeded`` is judged against the schedule, never a fixed window:
  the newest due time once it is handled or its grace (retries) has run out,
  else the one before it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from croniter import croniter

from raftpod_operator.manifests import Cluster, s3_url
from raftpod_operator.spec import BackupSpec, S3Destination

BACKUP_NOW_ANNOTATION = "raftpod.io/backup-now"
MAX_ATTEMPTS = 3  # per due time
RETRY_DELAYS = (dt.timedelta(seconds=20), dt.timedelta(seconds=60))  # after failure 1, 2
MAX_GRACE = dt.timedelta(minutes=10)  # how long a due time may still be in progress
BACKUP_TIMEOUT = 300.0  # seconds for one snapshot-and-upload call


def parse_time(text: Any) -> dt.datetime | None:
    """An RFC 3339 timestamp from status, or None."""
    if not isinstance(text, str) or not text:
        return None
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def stamp(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class BackupState:
    """What ``status.backup`` remembers between timer rounds (and operator restarts)."""

    handled: dt.datetime | None = None  # newest scheduled time done with
    pending: dt.datetime | None = None  # a scheduled time with failed attempts, still retried
    attempts: int = 0  # failed attempts for ``pending`` (or for ``handled`` when it gave up)
    last_failure: dt.datetime | None = None
    error: str = ""
    on_demand: str = ""  # the last handled value of the backup-now annotation

    @classmethod
    def from_status(cls, status: Mapping[str, Any]) -> BackupState:
        raw = status.get("backup") or {}
        attempts = raw.get("attempts", 0)
        return cls(
            handled=parse_time(raw.get("handledTime")),
            pending=parse_time(raw.get("pendingTime")),
            attempts=attempts if isinstance(attempts, int) else 0,
            last_failure=parse_time(raw.get("lastFailureTime")),
            error=str(raw.get("lastError") or ""),
            on_demand=str(raw.get("onDemandHandled") or ""),
        )

    def to_status(self) -> dict[str, Any]:
        """The ``status.backup`` object (None clears a field under a merge patch)."""
        return {
            "handledTime": stamp(self.handled) if self.handled else None,
            "pendingTime": stamp(self.pending) if self.pending else None,
            "attempts": self.attempts,
            "lastFailureTime": stamp(self.last_failure) if self.last_failure else None,
            "lastError": self.error or None,
            "onDemandHandled": self.on_demand or None,
        }


@dataclass(frozen=True)
class Firing:
    """One backup to ask for now: for a scheduled time, on demand, or both at once."""

    due: dt.datetime | None  # the scheduled time it serves
    attempt: int  # 1-based, for ``due`` (0 without one)
    on_demand: str | None  # the annotation value it serves


def latest_due(schedule: str, created: dt.datetime, now: dt.datetime) -> dt.datetime | None:
    """The newest scheduled time in ``(created, now]``, or None before the first one."""
    times = croniter(schedule, now + dt.timedelta(seconds=1))
    newest: dt.datetime = times.get_prev(dt.datetime)
    if newest > now:
        newest = times.get_prev(dt.datetime)
    return newest if newest > created else None


def _previous_time(schedule: str, when: dt.datetime) -> dt.datetime:
    previous: dt.datetime = croniter(schedule, when).get_prev(dt.datetime)
    return previous


def _grace(schedule: str, due: dt.datetime) -> dt.timedelta:
    """How long ``due`` may stay in progress (retries) before it is judged."""
    following: dt.datetime = croniter(schedule, due).get_next(dt.datetime)
    return min(MAX_GRACE, (following - due) / 2)


def retry_delay(failed_attempts: int) -> dt.timedelta:
    """The pause after ``failed_attempts`` failures of one scheduled time."""
    return RETRY_DELAYS[min(failed_attempts, len(RETRY_DELAYS)) - 1]


def next_firing(
    schedule: str,
    *,
    created: dt.datetime,
    state: BackupState,
    on_demand: str,
    now: dt.datetime,
) -> Firing | None:
    """What to ask the leader for now, if anything."""
    wanted = on_demand if on_demand and on_demand != state.on_demand else None
    due = latest_due(schedule, created, now)
    if due is not None and state.handled is not None and due <= state.handled:
        due = None
    attempt = 1
    if due is not None and state.pending == due and state.attempts > 0:
        retry_at = (state.last_failure or now) + retry_delay(state.attempts)
        if now < retry_at:
            due = None  # a retry is pending; an on-demand request still goes
        else:
            attempt = state.attempts + 1
    if due is None and wanted is None:
        return None
    return Firing(due, attempt if due is not None else 0, wanted)


def after_attempt(
    state: BackupState, firing: Firing, *, error: str | None, now: dt.datetime
) -> BackupState:
    """The state once ``firing`` succeeded (``error`` None) or failed."""
    new = replace(state, on_demand=firing.on_demand or state.on_demand)
    if error is not None:
        new = replace(new, last_failure=now, error=error)
    if firing.due is None:
        return new
    if error is None:
        return replace(new, handled=firing.due, pending=None, attempts=0)
    if firing.attempt >= MAX_ATTEMPTS:
        return replace(new, handled=firing.due, pending=None, attempts=firing.attempt)
    return replace(new, pending=firing.due, attempts=firing.attempt)


@dataclass(frozen=True)
class Verdict:
    """``BackupSucceeded`` as the schedule judges it."""

    ok: bool
    reason: str  # Succeeded, BackupFailed, BackupMissed
    message: str


def judge(
    schedule: str,
    *,
    created: dt.datetime,
    state: BackupState,
    last_success: dt.datetime | None,
    now: dt.datetime,
) -> Verdict | None:
    """The condition for the newest due time that can be judged (None: nothing due yet)."""
    due = latest_due(schedule, created, now)
    if due is None:
        return None
    settled = (state.handled is not None and state.handled >= due) or now - due > _grace(
        schedule, due
    )
    if not settled:
        before = _previous_time(schedule, due)
        if before <= created:
            return None
        due = before
    if last_success is not None and last_success >= due:
        return Verdict(True, "Succeeded", f"the backup due at {stamp(due)} was taken")
    if state.last_failure is not None and state.last_failure >= due:
        tries = f" after {state.attempts} attempt(s)" if state.handled == due else ""
        return Verdict(
            False, "BackupFailed", f"the backup due at {stamp(due)} failed{tries}: {state.error}"
        )
    return Verdict(
        False,
        "BackupMissed",
        f"no backup was taken for {stamp(due)}: no leader to ask, or the operator was not "
        "running; see the events and the cluster's phase",
    )


def destination_url(destination: S3Destination, compression: str, c: Cluster) -> str:
    """``s3://bucket/<prefix>/<namespace>?endpoint=..``; the sidecar adds ``/<cluster name>/``."""
    return s3_url(
        destination.bucket,
        "/".join(p for p in (destination.prefix.strip("/"), c.namespace) if p),
        endpoint=destination.endpoint.rstrip("/"),
        region=destination.region,
        sse=destination.sse or "",
        compression="" if compression == "none" else compression,
    )


def backup_request(spec: BackupSpec, c: Cluster, uid: str) -> dict[str, Any]:
    """The body of ``POST /admin/backup`` for this cluster."""
    assert spec.destination is not None and spec.destination.s3 is not None
    return {
        "url": destination_url(spec.destination.s3, spec.compression, c),
        "cluster": c.name,
        "cluster_uid": uid,
        "retain": spec.retain,
    }


def last_backup(answer: Mapping[str, Any], now: dt.datetime) -> dict[str, Any]:
    """``status.lastBackup`` from the sidecar's answer (``url``, ``index``, ``bytes``)."""
    return {
        "time": stamp(now),
        "url": str(answer.get("url", "")),
        "index": int(answer.get("index", 0)),
        "sizeBytes": int(answer.get("bytes", 0)),
    }
