"""The write path's shortcuts: commit-only hard states wait for the next write, and
inline writes happen on the caller's thread. Both keep what recovery sees."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from raftpod_sidecar.raft.messages import ConfState, Entry, HardState, Snapshot, SnapshotMeta
from raftpod_sidecar.storage import DurableStorage
from raftpod_sidecar.storage.wal import read_segments
from raftpod_sidecar.storage.walops import Op, decode_group


def entries(lo: int, hi: int, term: int = 1) -> list[Entry]:
    return [Entry(term, i, data=b"v%d" % i) for i in range(lo, hi)]


def hard_states_on_disk(data_dir: Path) -> list[HardState]:
    """Every HARD_STATE record in the WAL, oldest first (read beside the open writer)."""
    found = []
    for segment in read_segments(data_dir / "wal"):
        for payload in segment.payloads:
            found += [args[0] for op, args in decode_group(payload) if op is Op.HARD_STATE]
    return found


@pytest.mark.parametrize("inline", [False, True])
async def test_commit_only_hard_state_rides_with_the_next_write(
    tmp_path: Path, inline: bool
) -> None:
    fsyncs: list[float] = []
    s = DurableStorage.open(tmp_path, on_fsync=fsyncs.append)
    await s.persist(HardState(1, "n1", 0), entries(1, 4), inline=inline)
    before = len(fsyncs)
    await s.persist(HardState(1, "n1", 3), inline=inline)
    assert len(fsyncs) == before  # no fsync, no write
    assert s.hard_state == HardState(1, "n1", 3)  # but visible at once
    assert hard_states_on_disk(tmp_path) == [HardState(1, "n1", 0)]
    await s.persist(None, entries(4, 6), inline=inline)
    assert len(fsyncs) == before + 1
    assert hard_states_on_disk(tmp_path)[-1] == HardState(1, "n1", 3)
    await s.close()
    s = DurableStorage.open(tmp_path)
    assert s.initial_state()[0] == HardState(1, "n1", 3)
    assert s.last_index() == 5
    await s.close()


async def test_unwritten_commit_index_is_written_at_close(tmp_path: Path) -> None:
    s = DurableStorage.open(tmp_path)
    await s.persist(HardState(2, "n2", 0), entries(1, 3, term=2), inline=True)
    await s.persist(HardState(2, "n2", 2), inline=True)
    await s.close()
    s = DurableStorage.open(tmp_path)
    assert s.hard_state == HardState(2, "n2", 2)
    await s.close()


@pytest.mark.parametrize("inline", [False, True])
async def test_a_new_term_or_vote_alone_is_fsynced_before_returning(
    tmp_path: Path, inline: bool
) -> None:
    fsyncs: list[float] = []
    s = DurableStorage.open(tmp_path, on_fsync=fsyncs.append)
    await s.persist(HardState(1, "", 0), entries(1, 2), inline=inline)
    for hard_state in (HardState(1, "n3", 0), HardState(2, "", 0)):
        before = len(fsyncs)
        await s.persist(hard_state, inline=inline)
        assert len(fsyncs) == before + 1
        assert hard_states_on_disk(tmp_path)[-1] == hard_state
    await s.close()


async def test_inline_writes_queue_behind_a_snapshot_install(tmp_path: Path) -> None:
    """An installed snapshot goes through the thread; writes made while it is queued
    queue behind it (in order, sharing its fsync); once it is done, writes go inline."""
    fsyncs: list[float] = []
    s = DurableStorage.open(tmp_path, on_fsync=fsyncs.append)
    await s.persist(HardState(1, "n1", 0), entries(1, 3), inline=True)
    snapshot = Snapshot(SnapshotMeta(10, 2, ConfState()), b"state at 10")
    await asyncio.gather(
        s.persist(HardState(2, "n1", 10), (), snapshot, inline=True),
        s.persist(None, entries(11, 13, term=2), inline=True),
    )
    assert (s.snapshot(), s.first_index(), s.last_index()) == (snapshot, 11, 12)
    before = len(fsyncs)
    await s.persist(None, entries(13, 14, term=2), inline=True)
    assert len(fsyncs) == before + 1
    await s.close()
    s = DurableStorage.open(tmp_path)
    assert s.snapshot() == snapshot
    assert s.entries(11, 14, 1 << 30) == entries(11, 14, term=2)
    assert s.hard_state == HardState(2, "n1", 10)
    await s.close()
