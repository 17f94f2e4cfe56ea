"""Startup after a crash that lost an unwritten commit index (it has no fsync of its own)."""

from __future__ import annotations

from pathlib import Path

from raftpod_sidecar import server
from raftpod_sidecar.raft.messages import ConfState, Entry, HardState
from raftpod_sidecar.storage import DurableStorage


async def test_a_commit_index_behind_the_snapshot_is_raised_to_it(tmp_path: Path) -> None:
    before_crash = DurableStorage.open(tmp_path)
    await before_crash.persist(HardState(1, "n1", 0), [Entry(1, i) for i in range(1, 6)])
    await before_crash.persist(HardState(1, "n1", 5))  # commit-only: kept for the next write
    await before_crash.create_snapshot(5, ConfState(), b"applied through 5")
    # a crash now loses the commit index; open the directory as a restart would
    restarted = DurableStorage.open(tmp_path)
    try:
        assert restarted.hard_state == HardState(1, "n1", 0)
        snapshot = restarted.snapshot()
        assert snapshot.meta.index == 5
        await server._commit_through_snapshot(restarted, snapshot)
        assert restarted.initial_state()[0] == HardState(1, "n1", 5)
    finally:
        await restarted.close()
        await before_crash.close()
