"""Recovery: torn tails are cut off with a warning, damage in the middle is refused."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from raftpod_sidecar.raft.messages import ConfState, Entry, HardState, Snapshot, SnapshotMeta
from raftpod_sidecar.storage import DurableStorage, SnapshotCorruptError, WalCorruptError
from raftpod_sidecar.storage.records import HEADER, read_records
from raftpod_sidecar.storage.wal import list_segments


def batch(lo: int, hi: int) -> list[Entry]:
    return [Entry(1, i, data=b"v%d" % i) for i in range(lo, hi)]


async def build(path: Path, groups: int = 3, segment_bytes: int = 1 << 20) -> Path:
    """A log of ``groups`` records of 10 entries each; returns the last segment."""
    s = DurableStorage.open(path, segment_bytes=segment_bytes)
    for g in range(groups):
        await s.persist(HardState(1, "n1", g * 10), batch(g * 10 + 1, g * 10 + 11))
    await s.close()
    return list_segments(path / "wal")[-1][1]


def record_offsets(segment: Path) -> list[int]:
    records, _ = read_records(segment.read_bytes())
    return [0] + [r.end for r in records]


def last_index_after_reopen(path: Path) -> int:
    async def run() -> int:
        s = DurableStorage.open(path)
        try:
            return s.last_index()
        finally:
            await s.close()

    return asyncio.run(run())


@pytest.fixture
def built(tmp_path: Path) -> Path:
    asyncio.run(build(tmp_path))
    return tmp_path


def _cut_points() -> list[int]:
    return [1, 5, HEADER.size - 1, HEADER.size, HEADER.size + 1, 40, -1]


@pytest.mark.parametrize("keep", _cut_points())
def test_torn_last_record_is_truncated(
    built: Path, keep: int, caplog: pytest.LogCaptureFixture
) -> None:
    segment = list_segments(built / "wal")[-1][1]
    offsets = record_offsets(segment)
    last_start, end = offsets[-2], offsets[-1]
    cut = last_start + (keep if keep > 0 else end - last_start + keep)
    data = segment.read_bytes()
    segment.write_bytes(data[:cut])
    with caplog.at_level(logging.WARNING):
        assert last_index_after_reopen(built) == 20
    assert segment.stat().st_size == last_start
    (warning,) = [r for r in caplog.records if "torn tail" in r.getMessage()]
    fields = getattr(warning, "raftpod_fields")  # noqa: B009 (set through logging's extra)
    assert fields["offset"] == last_start
    assert fields["file"] == str(segment)


def test_every_cut_of_the_last_record_recovers_the_rest(built: Path) -> None:
    segment = list_segments(built / "wal")[-1][1]
    original = segment.read_bytes()
    offsets = record_offsets(segment)
    for cut in range(offsets[-2], offsets[-1], 7):
        segment.write_bytes(original[:cut])
        assert last_index_after_reopen(built) == 20
        segment.write_bytes(original)
    assert last_index_after_reopen(built) == 30


@pytest.mark.parametrize("tail", [b"\x00" * 4096, b"\xff" * 3, b"garbage" * 50])
def test_zeros_or_garbage_after_the_last_record_are_truncated(built: Path, tail: bytes) -> None:
    segment = list_segments(built / "wal")[-1][1]
    size = segment.stat().st_size
    with segment.open("ab") as f:
        f.write(tail)
    assert last_index_after_reopen(built) == 30
    assert segment.stat().st_size == size


@pytest.mark.parametrize("where", ["header", "payload"])
def test_damage_in_the_middle_is_refused(built: Path, where: str) -> None:
    segment = list_segments(built / "wal")[-1][1]
    offsets = record_offsets(segment)
    damaged = offsets[1] + (2 if where == "header" else HEADER.size + 5)
    data = bytearray(segment.read_bytes())
    data[damaged] ^= 0xFF
    segment.write_bytes(bytes(data))
    with pytest.raises(WalCorruptError, match="followed by a valid one") as info:
        last_index_after_reopen(built)
    assert info.value.path == segment
    assert info.value.offset == offsets[1]
    assert str(segment) in str(info.value)
    assert segment.read_bytes() == bytes(data)  # nothing was truncated


def test_damage_in_a_segment_that_is_not_the_last_is_refused(tmp_path: Path) -> None:
    asyncio.run(build(tmp_path, groups=6, segment_bytes=200))
    segments = list_segments(tmp_path / "wal")
    assert len(segments) >= 3
    first = segments[0][1]
    data = first.read_bytes()
    first.write_bytes(data[:-3])  # its last record torn, but later segments exist
    with pytest.raises(WalCorruptError, match="not the last") as info:
        last_index_after_reopen(tmp_path)
    assert info.value.path == first


def test_missing_middle_segment_is_refused(tmp_path: Path) -> None:
    asyncio.run(build(tmp_path, groups=6, segment_bytes=200))
    segments = list_segments(tmp_path / "wal")
    segments[1][1].unlink()
    with pytest.raises(WalCorruptError, match="missing"):
        last_index_after_reopen(tmp_path)


def test_snapshot_checksum_mismatch_is_refused(tmp_path: Path) -> None:
    async def run() -> None:
        s = DurableStorage.open(tmp_path)
        await s.persist(None, batch(1, 10))
        await s.create_snapshot(5, ConfState(), b"precious state")
        await s.close()

    asyncio.run(run())
    (snap,) = (tmp_path / "snap").iterdir()
    data = bytearray(snap.read_bytes())
    data[-3] ^= 0x01
    snap.write_bytes(bytes(data))
    with pytest.raises(SnapshotCorruptError, match="SHA-256") as info:
        last_index_after_reopen(tmp_path)
    assert info.value.path == snap


async def test_concurrent_persists_share_fsyncs(tmp_path: Path) -> None:
    fsyncs: list[float] = []
    s = DurableStorage.open(tmp_path, on_fsync=fsyncs.append)
    await asyncio.gather(*(s.persist(None, batch(i, i + 1)) for i in range(1, 201)))
    assert s.last_index() == 200
    assert len(fsyncs) <= 100
    await s.close()
    s = DurableStorage.open(tmp_path)
    assert s.entries(1, 201, 1 << 30) == batch(1, 201)
    assert s.snapshot() == Snapshot(SnapshotMeta(), b"")
    await s.close()
