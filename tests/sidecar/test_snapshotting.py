"""Snapshots written beside the Ready loop, with a real ``DurableStorage`` on disk.

The snapshot file's write is held by a gate (``held_disk``, standing in for a disk
slower than the loop) so the tests can act while it is under way, deterministically.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from raftpod_sidecar import envelope
from raftpod_sidecar.raft.messages import ConfState, Entry, HardState, Member, Snapshot
from raftpod_sidecar.snapshotting import Snapshotter
from raftpod_sidecar.state.commands import Put, encode
from raftpod_sidecar.state.machine import StateMachine
from raftpod_sidecar.storage import DurableStorage, snapshots

CONF = ConfState((Member("n1", "127.0.0.1:1", True),))
DIRECTORY = {"n1": "http://127.0.0.1:2"}
GATE_SECONDS = 10.0  # a bound on every wait; no test reaches it


class HeldDisk:
    """Holds every snapshot file write until ``release``; ``fail`` makes it raise instead."""

    def __init__(self) -> None:
        self.writing = threading.Event()
        self.release = threading.Event()
        self.fail: OSError | None = None
        self.real = snapshots.write_snapshot

    def write(self, snap_dir: Path, snapshot: Snapshot) -> Path:
        self.writing.set()
        assert self.release.wait(GATE_SECONDS)
        if self.fail is not None:
            raise self.fail
        return self.real(snap_dir, snapshot)


@pytest.fixture
def held_disk(monkeypatch: pytest.MonkeyPatch) -> Iterator[HeldDisk]:
    disk = HeldDisk()
    monkeypatch.setattr(snapshots, "write_snapshot", disk.write)
    yield disk
    disk.release.set()


def _entry(index: int) -> Entry:
    return Entry(1, index, data=encode(Put(f"k{index % 7}", str(index).encode())))


class Recorder:
    """A ``Snapshotter`` on ``storage`` keeping 5 entries, with what it reported."""

    def __init__(self, storage: DurableStorage) -> None:
        self.taken: list[Snapshot] = []
        self.wakes = 0
        self.snapshotter = Snapshotter(storage, 5, self.on_taken, self.wake)
        self.waiter: asyncio.Future[Snapshot] = asyncio.get_running_loop().create_future()

    def on_taken(self, snapshot: Snapshot, seconds: float) -> None:
        assert seconds >= 0
        self.taken.append(snapshot)

    def wake(self) -> None:
        self.wakes += 1


async def _stored(tmp_path: Path, last: int) -> tuple[DurableStorage, StateMachine]:
    storage = DurableStorage.open(tmp_path)
    entries = [_entry(i) for i in range(1, last + 1)]
    await storage.persist(HardState(1, "n1", last), entries)
    machine = StateMachine()
    for entry in entries:
        machine.apply(entry)
    return storage, machine


async def test_the_loop_applies_and_persists_while_the_snapshot_file_is_written(
    tmp_path: Path, held_disk: HeldDisk
) -> None:
    storage, machine = await _stored(tmp_path, 40)
    recorder = Recorder(storage)
    snapshotter, waiter = recorder.snapshotter, recorder.waiter
    blob_at_40 = machine.snapshot()
    snapshotter.start(40, CONF, machine.snapshot_parts(), dict(DIRECTORY), [waiter])
    assert snapshotter.busy
    assert await asyncio.to_thread(held_disk.writing.wait, GATE_SECONDS)
    # the file is being written: the state machine and the WAL go on meanwhile
    more = [_entry(i) for i in range(41, 61)]
    await storage.persist(HardState(1, "n1", 60), more)
    for entry in more:
        machine.apply(entry)
    assert not waiter.done() and recorder.taken == []
    held_disk.release.set()
    snapshot = await asyncio.wait_for(waiter, GATE_SECONDS)
    assert snapshot.meta.index == 40 and snapshot.meta.conf == CONF
    assert envelope.unpack_snapshot(snapshot.data) == (blob_at_40, DIRECTORY)
    assert recorder.taken == [snapshot] and recorder.wakes == 1
    assert not snapshotter.busy and snapshotter.failure is None
    assert storage.first_index() == 36  # compacted behind it, keeping 5 entries
    assert storage.last_index() == 60
    await storage.close()
    reopened = DurableStorage.open(tmp_path)
    try:
        assert reopened.snapshot().meta.index == 40
        assert bytes(reopened.snapshot().data) == bytes(snapshot.data)
        assert reopened.last_index() == 60
    finally:
        await reopened.close()


async def test_a_failed_write_fails_the_waiters_and_is_kept_for_the_loop(
    tmp_path: Path, held_disk: HeldDisk
) -> None:
    storage, machine = await _stored(tmp_path, 10)
    recorder = Recorder(storage)
    snapshotter, waiter = recorder.snapshotter, recorder.waiter
    held_disk.fail = OSError(28, "No space left on device")
    held_disk.release.set()
    snapshotter.start(10, CONF, machine.snapshot_parts(), dict(DIRECTORY), [waiter])
    with pytest.raises(OSError, match="No space left"):
        await asyncio.wait_for(waiter, GATE_SECONDS)
    assert snapshotter.failure is held_disk.fail
    assert recorder.taken == [] and recorder.wakes == 1 and not snapshotter.busy
    assert storage.first_index() == 1 and storage.snapshot().meta.index == 0
    await storage.close()
