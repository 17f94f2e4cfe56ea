"""Snapshot files: a checked header (version, index, term, conf, SHA-256) then the data.

Files are written to a temporary name, fsynced, renamed and the directory
fsynced, so a crash leaves either the old set or the new file, never half of
one; leftover temporary files are removed on open.
"""

from __future__ import annotations

import hashlib
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import msgpack

from ..raft.messages import ConfState, Member, Snapshot, SnapshotMeta
from .errors import SnapshotCorruptError
from .wal import fsync_dir

FORMAT_VERSION = 1
MAGIC = b"RPSNAP\r\n"
_PREFIX = struct.Struct("<8sI")  # magic, header length
_CRC = struct.Struct("<I")
SUFFIX = ".snap"
TEMP_SUFFIX = ".tmp"


def snapshot_path(snap_dir: Path, index: int) -> Path:
    return snap_dir / f"snapshot-{index:020d}{SUFFIX}"


def list_snapshots(snap_dir: Path) -> list[Path]:
    """Snapshot files, oldest (lowest index) first."""
    return sorted(snap_dir.glob(f"snapshot-*{SUFFIX}"))


def remove_temp_files(snap_dir: Path) -> None:
    """Drop half-written snapshots a crash left behind."""
    for path in snap_dir.glob(f"*{TEMP_SUFFIX}"):
        path.unlink()


def _encode_header(meta: SnapshotMeta, data_len: int, digest: bytes) -> bytes:
    header: bytes = msgpack.packb(
        [FORMAT_VERSION, meta.index, meta.term, meta.conf, data_len, digest], use_bin_type=True
    )
    return _PREFIX.pack(MAGIC, len(header)) + header + _CRC.pack(zlib.crc32(header))


def write_snapshot(snap_dir: Path, snapshot: Snapshot) -> Path:
    """Write ``snapshot`` atomically and durably; returns its path."""
    digest = hashlib.sha256(snapshot.data).digest()
    header = _encode_header(snapshot.meta, len(snapshot.data), digest)

    def write(out: BinaryIO) -> None:
        out.write(header)
        out.write(snapshot.data)

    return _write_atomically(snap_dir, snapshot.meta.index, write)


def _write_atomically(snap_dir: Path, index: int, write: Callable[[BinaryIO], None]) -> Path:
    final = snapshot_path(snap_dir, index)
    temp = final.with_name(final.name + TEMP_SUFFIX)
    with temp.open("wb") as out:
        write(out)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temp, final)
    fsync_dir(snap_dir)
    return final


def _decode_conf(raw: Any) -> ConfState:
    return ConfState(tuple(Member(*m) for m in raw[0]))


def read_header(f: BinaryIO, path: Path) -> tuple[SnapshotMeta, int, bytes]:
    """Parse and check the header; leaves ``f`` at the data. Returns meta, data length, digest."""
    prefix = f.read(_PREFIX.size)
    if len(prefix) < _PREFIX.size:
        raise SnapshotCorruptError(path, "file shorter than its header")
    magic, header_len = _PREFIX.unpack(prefix)
    if magic != MAGIC:
        raise SnapshotCorruptError(path, "not a raftpod snapshot (bad magic)")
    header = f.read(header_len)
    crc = f.read(_CRC.size)
    if len(header) < header_len or len(crc) < _CRC.size:
        raise SnapshotCorruptError(path, "truncated header")
    if zlib.crc32(header) != _CRC.unpack(crc)[0]:
        raise SnapshotCorruptError(path, "header checksum mismatch")
    version, index, term, conf, data_len, digest = msgpack.unpackb(header, raw=False)
    if version != FORMAT_VERSION:
        raise SnapshotCorruptError(path, f"unsupported format version {version}")
    return SnapshotMeta(index, term, _decode_conf(conf)), data_len, digest


def read_snapshot(path: Path) -> Snapshot:
    """Load a snapshot, verifying its length and SHA-256."""
    with path.open("rb") as f:
        meta, data_len, digest = read_header(f, path)
        data = f.read()
    if len(data) != data_len:
        raise SnapshotCorruptError(path, f"data is {len(data)} bytes, header says {data_len}")
    if hashlib.sha256(data).digest() != digest:
        raise SnapshotCorruptError(path, "SHA-256 mismatch")
    return Snapshot(meta, data)


def open_snapshot_data(path: Path) -> tuple[SnapshotMeta, int, BinaryIO]:
    """Meta, data length, and the file positioned at the data, for chunked reading."""
    f = path.open("rb")
    try:
        meta, data_len, _ = read_header(f, path)
    except BaseException:
        f.close()
        raise
    return meta, data_len, f


def prune_snapshots(snap_dir: Path, keep: int) -> None:
    """Keep only the newest ``keep`` snapshot files (safe to run from two threads)."""
    files = list_snapshots(snap_dir)
    for path in files[: max(0, len(files) - keep)]:
        path.unlink(missing_ok=True)
    if len(files) > keep:
        fsync_dir(snap_dir)
