"""DurableStorage round trips, truncation, compaction, rotation and snapshots."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from raftpod_sidecar.raft.messages import (
    ConfState,
    Entry,
    EntryType,
    HardState,
    Member,
    Snapshot,
    SnapshotMeta,
)
from raftpod_sidecar.raft.storage import CompactedError, UnavailableError
from raftpod_sidecar.storage import DurableStorage
from raftpod_sidecar.storage.wal import list_segments

CONF = ConfState((Member("n1", "127.0.0.1:7000", True), Member("n2", "127.0.0.1:7010", False)))


def entries(lo: int, hi: int, term: int = 1, size: int = 8) -> list[Entry]:
    return [
        Entry(term, i, EntryType.NORMAL, bytes([i % 256]) * size, "c", i) for i in range(lo, hi)
    ]


async def reopen(storage: DurableStorage, segment_bytes: int = 64 << 20) -> DurableStorage:
    await storage.close()
    return DurableStorage.open(storage.data_dir, segment_bytes=segment_bytes)


async def test_round_trip_entries_and_hard_state(tmp_path: Path) -> None:
    s = DurableStorage.open(tmp_path)
    stored = [*entries(1, 4), Entry(1, 4, EntryType.CONF_CHANGE, b"cc")]
    await s.persist(HardState(1, "n1", 2), stored)
    assert s.entries(1, 5, 1 << 20) == stored
    s = await reopen(s)
    assert s.initial_state() == (HardState(1, "n1", 2), ConfState())
    assert (s.first_index(), s.last_index()) == (1, 4)
    got = s.entries(1, 5, 1 << 20)
    assert got == stored
    assert got[3].type is EntryType.CONF_CHANGE
    await s.close()


async def test_conflicting_suffix_is_replaced_durably(tmp_path: Path) -> None:
    s = DurableStorage.open(tmp_path)
    await s.persist(HardState(1, "", 0), entries(1, 11, term=1))
    await s.persist(HardState(2, "n2", 0), entries(6, 8, term=2))
    assert s.last_index() == 7
    s = await reopen(s)
    assert s.last_index() == 7
    assert [e.term for e in s.entries(1, 8, 1 << 20)] == [1] * 5 + [2, 2]
    with pytest.raises(UnavailableError):
        s.term(8)
    await s.close()


async def test_gap_is_refused_before_writing(tmp_path: Path) -> None:
    s = DurableStorage.open(tmp_path)
    await s.persist(None, entries(1, 3))
    with pytest.raises(UnavailableError):
        await s.persist(None, entries(5, 6))
    s = await reopen(s)
    assert s.last_index() == 2
    await s.close()


async def test_rotation_and_compaction_remove_old_segments(tmp_path: Path) -> None:
    s = DurableStorage.open(tmp_path, segment_bytes=4096)
    for lo in range(1, 401, 20):
        await s.persist(HardState(3, "n1", lo), entries(lo, lo + 20, size=50))
    wal_dir = tmp_path / "wal"
    before = [seq for seq, _ in list_segments(wal_dir)]
    assert len(before) > 5
    await s.create_snapshot(300, CONF, b"state@300")
    await s.compact(290)
    after = [seq for seq, _ in list_segments(wal_dir)]
    assert after[0] > before[0]
    assert after[-1] == before[-1]
    assert (s.first_index(), s.last_index()) == (291, 400)
    s = await reopen(s, segment_bytes=4096)
    assert (s.first_index(), s.last_index()) == (291, 400)
    assert s.term(290) == 1
    with pytest.raises(CompactedError):
        s.entries(290, 292, 1 << 20)
    assert s.entries(291, 401, 1 << 20) == entries(291, 401, size=50)
    assert s.snapshot() == Snapshot(SnapshotMeta(300, 1, CONF), b"state@300")
    assert s.initial_state() == (HardState(3, "n1", 381), CONF)
    await s.close()


async def test_compact_past_snapshot_is_refused(tmp_path: Path) -> None:
    s = DurableStorage.open(tmp_path)
    await s.persist(None, entries(1, 10))
    with pytest.raises(ValueError, match="past the snapshot"):
        await s.compact(5)
    await s.close()


async def test_installed_snapshot_replaces_the_log(tmp_path: Path) -> None:
    s = DurableStorage.open(tmp_path, segment_bytes=1024)
    for lo in range(1, 81, 10):
        await s.persist(HardState(1, "", 3), entries(lo, lo + 10, size=40))
    assert len(list_segments(tmp_path / "wal")) > 2
    snap = Snapshot(SnapshotMeta(50, 4, CONF), b"big state")
    await s.persist(HardState(4, "", 50), entries(51, 53, term=4), snap)
    assert (s.first_index(), s.last_index(), s.term(50)) == (51, 52, 4)
    assert len(list_segments(tmp_path / "wal")) == 1  # the old log is gone
    s = await reopen(s)
    assert (s.first_index(), s.last_index(), s.term(50)) == (51, 52, 4)
    assert s.snapshot() == snap
    assert s.initial_state() == (HardState(4, "", 50), CONF)
    await s.close()


async def test_snapshot_streaming_install_and_reader(tmp_path: Path) -> None:
    s = DurableStorage.open(tmp_path / "data")
    source = tmp_path / "received.bin"
    source.write_bytes(b"x" * 100_000)
    meta = SnapshotMeta(10, 2, CONF)
    installed = await s.install_snapshot_file(meta, source)
    assert installed == Snapshot(meta, b"x" * 100_000)
    opened = s.snapshot_reader()
    assert opened is not None
    got_meta, size, f = opened
    with f:
        chunks = list(iter(lambda: f.read(4096), b""))
    assert (got_meta, size, b"".join(chunks)) == (meta, 100_000, b"x" * 100_000)
    await s.close()


async def test_only_the_newest_snapshots_are_kept(tmp_path: Path) -> None:
    s = DurableStorage.open(tmp_path, keep_snapshots=2)
    await s.persist(None, entries(1, 40))
    for index in (10, 20, 30):
        await s.create_snapshot(index, CONF, f"at {index}".encode())
    names = sorted(p.name for p in (tmp_path / "snap").iterdir())
    assert names == [f"snapshot-{20:020d}.snap", f"snapshot-{30:020d}.snap"]
    await s.close()


async def test_leftover_temp_snapshot_is_ignored_and_removed(tmp_path: Path) -> None:
    s = DurableStorage.open(tmp_path)
    await s.persist(None, entries(1, 20))
    await s.create_snapshot(10, CONF, b"good")
    await s.close()
    temp = tmp_path / "snap" / f"snapshot-{15:020d}.snap.tmp"
    temp.write_bytes(b"half a snapshot")
    s = DurableStorage.open(tmp_path)
    assert not temp.exists()
    assert s.snapshot().data == b"good"
    await s.close()


async def test_fsync_observer_sees_every_group(tmp_path: Path) -> None:
    seen: list[float] = []
    s = DurableStorage.open(tmp_path, on_fsync=seen.append)
    at_open = len(seen)  # the new segment's header record
    await s.persist(HardState(1, "", 0), entries(1, 2))
    await s.persist(None, entries(2, 3))
    await s.close()
    assert len(seen) == at_open + 2
    assert all(d >= 0 for d in seen)


@pytest.mark.parametrize("empty_segment_left_by_crash", [False, True])
async def test_hard_state_survives_removal_of_the_segment_that_recorded_it(
    tmp_path: Path, empty_segment_left_by_crash: bool
) -> None:
    s = DurableStorage.open(tmp_path, segment_bytes=2048)
    await s.persist(HardState(5, "n2", 0), entries(1, 2))
    for lo in range(2, 302, 30):
        await s.persist(None, entries(lo, lo + 30, size=40))
    if empty_segment_left_by_crash:
        await s.close()
        last_seq = list_segments(tmp_path / "wal")[-1][0]
        (tmp_path / "wal" / f"{last_seq + 1:016d}.wal").touch()
        s = DurableStorage.open(tmp_path, segment_bytes=2048)
    await s.create_snapshot(300, CONF, b"state")
    await s.compact(300)
    assert list_segments(tmp_path / "wal")[0][0] > 1  # the HARD_STATE record is gone
    s = await reopen(s, segment_bytes=2048)
    assert s.hard_state == HardState(5, "n2", 0)
    assert (s.first_index(), s.last_index(), s.term(300)) == (301, 301, 1)
    await s.close()


async def test_cancelled_persist_is_still_durable_and_applied(tmp_path: Path) -> None:
    s = DurableStorage.open(tmp_path)
    task = asyncio.create_task(s.persist(None, entries(1, 4)))
    await asyncio.sleep(0)  # let the task enqueue its write (not synchronisation)
    task.cancel()
    await s.persist(None, entries(4, 5))  # queued behind it, so it finished first
    assert s.last_index() == 4
    s = await reopen(s)
    assert s.entries(1, 5, 1 << 20) == entries(1, 5)
    await s.close()
