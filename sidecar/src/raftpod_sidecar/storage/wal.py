"""The segmented write-ahead log: numbered files of records, fsynced per group.

Recovery reads every segment in order. Damage in the last segment with nothing
valid after it is a torn tail (a group whose fsync never returned) and is cut
off; any other damage is refused, because serving it could lose acknowledged
writes.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..logs import event
from .errors import WalCorruptError
from .records import RecordType, encode_record, find_record_after, read_records

log = logging.getLogger(__name__)

SEGMENT_SUFFIX = ".wal"


def segment_path(wal_dir: Path, seq: int) -> Path:
    return wal_dir / f"{seq:016d}{SEGMENT_SUFFIX}"


def fsync_dir(path: Path) -> None:
    """Make a file creation, rename or removal in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class SegmentContents:
    seq: int
    path: Path
    payloads: list[bytes]


def list_segments(wal_dir: Path) -> list[tuple[int, Path]]:
    """Segment numbers and paths, oldest first."""
    found = []
    for path in wal_dir.glob(f"*{SEGMENT_SUFFIX}"):
        if path.stem.isdigit():
            found.append((int(path.stem), path))
    found.sort()
    return found


def read_segments(wal_dir: Path) -> list[SegmentContents]:
    """Every record payload, per segment; truncates a torn tail, refuses other damage."""
    segments = list_segments(wal_dir)
    for (prev, _), (seq, path) in itertools.pairwise(segments):
        if seq != prev + 1:
            raise WalCorruptError(path, 0, f"segment {prev + 1} is missing before it")
    contents = []
    for position, (seq, path) in enumerate(segments):
        buf = path.read_bytes()
        records, end = read_records(buf)
        if end < len(buf):
            is_last = position == len(segments) - 1
            _handle_damage(path, buf, end, is_last)
        contents.append(SegmentContents(seq, path, [r.payload for r in records]))
    return contents


def _handle_damage(path: Path, buf: bytes, offset: int, is_last: bool) -> None:
    if not is_last:
        raise WalCorruptError(path, offset, "bad record in a segment that is not the last")
    following = find_record_after(buf, offset)
    if following is not None:
        raise WalCorruptError(
            path, offset, f"bad record followed by a valid one at offset {following}"
        )
    event(
        log,
        "truncating torn tail of write-ahead log",
        logging.WARNING,
        file=str(path),
        offset=offset,
        dropped_bytes=len(buf) - offset,
    )
    fd = os.open(path, os.O_WRONLY)
    try:
        os.ftruncate(fd, offset)
        os.fsync(fd)
    finally:
        os.close(fd)


class WalWriter:
    """Appends group records to the newest segment; used by one thread only."""

    def __init__(
        self,
        wal_dir: Path,
        last_seq: int,
        segment_bytes: int,
        on_fsync: Callable[[float], None] | None,
    ) -> None:
        self.wal_dir = wal_dir
        self.segment_bytes = segment_bytes
        self.on_fsync = on_fsync
        self.seq = last_seq
        self._fd = os.open(segment_path(wal_dir, last_seq), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        self.size = os.fstat(self._fd).st_size
        fsync_dir(wal_dir)  # the segment may have just been created

    def append(self, payload: bytes) -> None:
        """Write one group as one record and fsync it before returning."""
        data = encode_record(RecordType.GROUP, payload)
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self.size += len(data)
        started = time.perf_counter()
        os.fdatasync(self._fd)
        if self.on_fsync is not None:
            self.on_fsync(time.perf_counter() - started)

    def needs_rotation(self) -> bool:
        return self.size >= self.segment_bytes

    def rotate(self, first_payload: bytes) -> None:
        """Start the next segment, opening it with ``first_payload`` (its base state)."""
        os.close(self._fd)
        self.seq += 1
        path = segment_path(self.wal_dir, self.seq)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND)
        self.size = 0
        self.append(first_payload)
        fsync_dir(self.wal_dir)

    def remove_segments(self, seqs: list[int]) -> None:
        """Delete older segments (never the one being written)."""
        for seq in seqs:
            if seq >= self.seq:
                raise ValueError(f"refusing to remove live segment {seq}")
            segment_path(self.wal_dir, seq).unlink(missing_ok=True)
        if seqs:
            fsync_dir(self.wal_dir)

    def close(self) -> None:
        os.close(self._fd)
