"""Backup scheduling from (schedule, status, now) alone: due times, retries, on demand, verdicts."""

from __future__ import annotations

import datetime as dt

import pytest
from raftcluster_env import C, minimal_spec

from raftpod_operator.backup import (
    MAX_ATTEMPTS,
    RETRY_DELAYS,
    BackupState,
    Firing,
    after_attempt,
    backup_request,
    judge,
    last_backup,
    latest_due,
    next_firing,
    stamp,
)
from raftpod_operator.crd import status_schema
from raftpod_operator.spec import SpecError

HOURLY = "0 * * * *"
CREATED = dt.datetime(2026, 11, 26, 5, 30, tzinfo=dt.UTC)  # first slot at 06:00


def at(hour: int, minute: int = 0, second: int = 0) -> dt.datetime:
    return CREATED.replace(hour=hour, minute=minute, second=second)


def fire(state: BackupState, now: dt.datetime, on_demand: str = "") -> Firing | None:
    return next_firing(HOURLY, created=CREATED, state=state, on_demand=on_demand, now=now)


def verdict(state: BackupState, now: dt.datetime, success: dt.datetime | None) -> tuple[bool, str]:
    v = judge(HOURLY, created=CREATED, state=state, last_success=success, now=now)
    assert v is not None
    return v.ok, v.reason


def test_latest_due_is_the_newest_slot_after_creation_up_to_now() -> None:
    assert latest_due(HOURLY, CREATED, at(5, 59, 59)) is None
    assert latest_due(HOURLY, CREATED, at(6)) == at(6)
    assert latest_due(HOURLY, CREATED, at(6, 59, 59)) == at(6)
    assert latest_due(HOURLY, CREATED, at(9, 30)) == at(9)
    assert latest_due("@daily", CREATED, at(23)) is None


def test_one_firing_per_due_time() -> None:
    state = BackupState()
    assert fire(state, at(5, 59)) is None
    first = fire(state, at(6, 0, 5))
    assert first == Firing(at(6), 1, None)
    state = after_attempt(state, first, error=None, now=at(6, 0, 7))
    # the next timer rounds, a restarted operator (same status) or another replica: nothing
    assert fire(BackupState.from_status({"backup": state.to_status()}), at(6, 30)) is None
    assert fire(state, at(7)) == Firing(at(7), 1, None)


def test_missed_slots_give_one_backup_not_a_burst() -> None:
    state = after_attempt(BackupState(), Firing(at(6), 1, None), error=None, now=at(6, 1))
    late = fire(state, at(11, 20))  # operator down from 06:30 to 11:20
    assert late == Firing(at(11), 1, None)
    state = after_attempt(state, late, error=None, now=at(11, 21))
    assert fire(state, at(11, 59)) is None


def test_a_failed_firing_is_retried_with_backoff_then_given_up() -> None:
    state = BackupState()
    now = at(6, 0, 5)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        firing = fire(state, now)
        assert firing == Firing(at(6), attempt, None)
        state = after_attempt(state, firing, error=f"boom {attempt}", now=now)
        if attempt < MAX_ATTEMPTS:
            delay = RETRY_DELAYS[attempt - 1]
            assert fire(state, now + delay - dt.timedelta(seconds=1)) is None
            now += delay
    assert state.handled == at(6) and state.pending is None and state.attempts == MAX_ATTEMPTS
    assert fire(state, now + dt.timedelta(minutes=5)) is None  # given up until 07:00
    assert fire(state, at(7)) == Firing(at(7), 1, None)


def test_a_newer_due_time_supersedes_a_retrying_one() -> None:
    state = after_attempt(BackupState(), Firing(at(6), 1, None), error="x", now=at(6, 59, 50))
    assert state.pending == at(6)
    assert fire(state, at(7, 0, 1)) == Firing(at(7), 1, None)


def test_on_demand_fires_once_per_new_value_and_rides_along_with_a_due_time() -> None:
    done = after_attempt(BackupState(), Firing(at(6), 1, None), error=None, now=at(6, 1))
    request = fire(done, at(6, 10), on_demand="2026-11-26T06:10")
    assert request == Firing(None, 0, "2026-11-26T06:10")
    failed = after_attempt(done, request, error="denied", now=at(6, 10))
    assert failed.on_demand == "2026-11-26T06:10" and failed.handled == at(6)  # one attempt only
    assert fire(failed, at(6, 20), on_demand="2026-11-26T06:10") is None
    assert fire(failed, at(6, 20), on_demand="again") == Firing(None, 0, "again")
    both = fire(failed, at(7), on_demand="third")
    assert both == Firing(at(7), 1, "third")
    ok = after_attempt(failed, both, error=None, now=at(7, 0, 3))
    assert (ok.handled, ok.on_demand) == (at(7), "third")


def test_on_demand_is_not_held_back_by_a_pending_retry() -> None:
    state = after_attempt(BackupState(), Firing(at(6), 1, None), error="x", now=at(6, 0, 1))
    assert fire(state, at(6, 0, 2), on_demand="now") == Firing(None, 0, "now")


def test_verdict_success_failure_and_missed_follow_the_schedule() -> None:
    fresh = BackupState()
    assert judge(HOURLY, created=CREATED, state=fresh, last_success=None, now=at(6, 0, 5)) is None
    # during 06:00's grace the slot is not judged yet; nothing before it to judge either
    ok = after_attempt(fresh, Firing(at(6), 1, None), error=None, now=at(6, 0, 9))
    assert verdict(ok, at(6, 0, 10), at(6, 0, 9)) == (True, "Succeeded")
    # 07:00 in progress: still judged by 06:00; after its grace (half the period): missed
    assert verdict(ok, at(7, 10), at(6, 0, 9)) == (True, "Succeeded")
    assert verdict(ok, at(7, 31), at(6, 0, 9)) == (False, "BackupMissed")
    failing = after_attempt(ok, Firing(at(7), 1, None), error="AccessDenied", now=at(7, 0, 5))
    assert verdict(failing, at(7, 1), at(6, 0, 9)) == (True, "Succeeded")  # still retrying
    assert verdict(failing, at(7, 31), at(6, 0, 9)) == (False, "BackupFailed")
    gave_up = after_attempt(failing, Firing(at(7), MAX_ATTEMPTS, None), error="x", now=at(7, 2))
    assert verdict(gave_up, at(7, 2), at(6, 0, 9)) == (False, "BackupFailed")  # at once
    v = judge(HOURLY, created=CREATED, state=gave_up, last_success=at(6, 0, 9), now=at(7, 2))
    assert v is not None and "07:00:00Z failed after 3 attempt(s): x" in v.message
    # the next slot that succeeds turns it back
    back = after_attempt(gave_up, Firing(at(8), 1, None), error=None, now=at(8, 0, 4))
    assert verdict(back, at(8, 0, 5), at(8, 0, 4)) == (True, "Succeeded")


def test_a_minutely_schedule_shows_failures_within_one_period() -> None:
    created = at(6)
    state = BackupState()
    for minute in (1, 2):
        now = at(6, minute, 5)
        firing = next_firing("* * * * *", created=created, state=state, on_demand="", now=now)
        assert firing is not None and firing.due == at(6, minute)
        state = after_attempt(state, firing, error="InvalidAccessKeyId", now=now)
    v = judge("* * * * *", created=created, state=state, last_success=None, now=at(6, 2, 10))
    assert v is not None and (v.ok, v.reason) == (False, "BackupFailed")


def test_state_round_trips_through_status_and_fits_the_schema() -> None:
    state = BackupState(at(6), at(7), 2, at(7, 1), "denied", "x")
    raw = state.to_status()
    assert BackupState.from_status({"backup": raw}) == state
    assert set(raw) == set(status_schema()["properties"]["backup"]["properties"])
    assert BackupState.from_status({}) == BackupState()
    assert BackupState().to_status()["handledTime"] is None  # a merge patch clears it


def test_request_names_the_cluster_folder_options_and_retention() -> None:
    spec = minimal_spec(
        backup={
            "retain": 3,
            "compression": "zstd",
            "destination": {
                "s3": {
                    "bucket": "bk",
                    "prefix": "/raft/",
                    "endpoint": "http://10.0.0.1:7070/",
                    "region": "eu-west-1",
                    "sse": "aws:kms",
                    "credentialsSecret": "creds",
                }
            },
        }
    )
    assert spec.backup is not None
    assert backup_request(spec.backup, C, "uid-1") == {
        "url": "s3://bk/raft/ns?endpoint=http%3A%2F%2F10.0.0.1%3A7070&region=eu-west-1"
        "&sse=aws%3Akms&compression=zstd",
        "cluster": "c",
        "cluster_uid": "uid-1",
        "retain": 3,
    }
    plain = minimal_spec(backup={"destination": {"s3": {"bucket": "bk"}}})
    assert plain.backup is not None
    assert backup_request(plain.backup, C, "u")["url"] == "s3://bk/ns"
    assert "secret" not in str(backup_request(spec.backup, C, "u")).lower()


def test_last_backup_from_the_sidecars_answer() -> None:
    answer = {"url": "s3://bk/ns/c/x.snap", "index": 42, "bytes": 1234, "size": 9999}
    assert last_backup(answer, at(6, 0, 3)) == {
        "time": "2026-11-26T06:00:03Z",
        "url": "s3://bk/ns/c/x.snap",
        "index": 42,
        "sizeBytes": 1234,
    }
    assert stamp(at(6)) == "2026-11-26T06:00:00Z"


@pytest.mark.parametrize(
    ("backup", "problem"),
    [
        ({"schedule": "61 * * * *"}, "not a cron expression"),
        ({"compression": "lz4"}, "expected one of none, gzip, zstd"),
        ({"retain": 0}, "must be at least 1"),
    ],
)
def test_invalid_backup_settings_are_rejected(backup: dict[str, object], problem: str) -> None:
    with pytest.raises(SpecError, match=problem):
        minimal_spec(backup={"destination": {"s3": {"bucket": "b"}}, **backup})


def test_invalid_destination_settings_are_rejected() -> None:
    with pytest.raises(SpecError, match="sse: expected one of AES256, aws:kms"):
        minimal_spec(backup={"destination": {"s3": {"bucket": "b", "sse": "yes"}}})
    with pytest.raises(SpecError, match="endpoint"):
        minimal_spec(backup={"destination": {"s3": {"bucket": "b", "endpoint": "minio:9000"}}})
