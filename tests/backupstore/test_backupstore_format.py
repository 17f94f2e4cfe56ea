"""The backup object format: round trips, and refusal of every kind of damage."""

from __future__ import annotations

import datetime as dt
import io
import random
import struct

import pytest

from raftpod_sidecar.backupstore import (
    BackupCorruptError,
    BackupError,
    BackupMeta,
    Compression,
    SnapshotInfo,
)
from raftpod_sidecar.backupstore.format import decode, encode, header_bytes, measure
from raftpod_sidecar.raft.messages import ConfState, Member, SnapshotMeta
from tests.backupstore.backends import COMPRESSIONS

MEMBERS = (Member("n1", "n1.raft:7000", True), Member("n4", "n4.raft:7000", False))
CREATED = dt.datetime(2026, 11, 26, 12, 30, 5, 250000, tzinfo=dt.UTC)


def snapshot_bytes(size: int, seed: int = 1) -> bytes:
    """Half random, half repetitive: compresses, but not to nothing."""
    rng = random.Random(seed)
    return bytes(rng.getrandbits(8) for _ in range(size // 2)) + b"key=value;" * (size // 20)


def build(data: bytes, compression: Compression = Compression.NONE) -> tuple[BackupMeta, bytes]:
    info = SnapshotInfo("prod", index=42, term=7, members=MEMBERS, cluster_uid="uid-1", node="n1")
    sha256, size = measure(io.BytesIO(data))
    meta = BackupMeta.describe(
        info, sha256=sha256, size=size, compression=compression, created=CREATED
    )
    return meta, b"".join(encode(meta, io.BytesIO(data)))


def read(blob: bytes, expect_cluster: str | None = None) -> tuple[BackupMeta, bytes]:
    out = io.BytesIO()
    chunks = (blob[i : i + 1000] for i in range(0, len(blob), 1000))
    meta = decode(chunks, out, where="test://blob", expect_cluster=expect_cluster)
    return meta, out.getvalue()


@pytest.mark.parametrize("compression", COMPRESSIONS)
@pytest.mark.parametrize("size", [0, 1, 70_000])
def test_round_trip(compression: Compression, size: int) -> None:
    data = snapshot_bytes(size)
    meta, blob = build(data, compression)
    got_meta, got = read(blob, expect_cluster="prod")
    assert got == data
    assert got_meta == meta
    if compression is not Compression.NONE and size > 1000:
        assert len(blob) < len(data)


def test_meta_records_what_the_spec_asks_for() -> None:
    meta, _ = build(b"abc")
    doc = meta.to_json()
    assert doc["cluster"] == "prod" and doc["cluster_uid"] == "uid-1"
    assert (doc["index"], doc["term"], doc["format"]) == (42, 7, 1)
    assert doc["members"][1] == {"id": "n4", "address": "n4.raft:7000", "voter": False}
    assert doc["created"] == "2026-11-26T12:30:05.250000Z"
    assert doc["sha256"] == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert doc["raftpod_version"]
    assert meta.user_metadata()["members"] == "n1=voter,n4=learner"


def test_snapshot_info_from_raft_meta() -> None:
    info = SnapshotInfo.from_snapshot_meta(
        SnapshotMeta(9, 3, ConfState(MEMBERS)), cluster="c1", node="n1"
    )
    assert (info.index, info.term, info.members, info.cluster) == (9, 3, MEMBERS, "c1")


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_a_flipped_body_byte_is_refused(compression: Compression) -> None:
    _, blob = build(snapshot_bytes(20_000), compression)
    damaged = bytearray(blob)
    damaged[-50] ^= 0x01
    with pytest.raises(BackupCorruptError, match="test://blob"):
        read(bytes(damaged))


def test_a_flipped_header_byte_is_refused() -> None:
    _, blob = build(b"payload")
    at = blob.index(b'"index":42') + len('"index":4')
    damaged = blob[:at] + b"3" + blob[at + 1 :]  # index 42 -> 43, still valid JSON
    with pytest.raises(BackupCorruptError, match="header checksum"):
        read(damaged)


@pytest.mark.parametrize("compression", COMPRESSIONS)
@pytest.mark.parametrize("cut", [5, 30, -1, -100])
def test_a_truncated_object_is_refused(compression: Compression, cut: int) -> None:
    _, blob = build(snapshot_bytes(20_000), compression)
    with pytest.raises(BackupCorruptError, match="truncated"):
        read(blob[:cut])


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_trailing_bytes_are_refused(compression: Compression) -> None:
    _, blob = build(snapshot_bytes(5_000), compression)
    with pytest.raises(BackupCorruptError):
        read(blob + b"extra")


def test_a_newer_format_is_refused_with_advice() -> None:
    _, blob = build(b"payload")
    magic, _, length, crc = struct.unpack(">8sHII", blob[:18])
    newer = struct.pack(">8sHII", magic, 2, length, crc) + blob[18:]
    with pytest.raises(BackupCorruptError, match="format version 2 is newer"):
        read(newer)


def test_not_a_backup_is_refused() -> None:
    with pytest.raises(BackupCorruptError, match="bad magic"):
        read(b"PK\x03\x04 this is a zip file, not a backup")


def test_another_clusters_backup_is_refused() -> None:
    _, blob = build(b"payload")
    with pytest.raises(BackupCorruptError, match="belongs to cluster 'prod', expected 'dev'"):
        read(blob, expect_cluster="dev")


def test_a_source_that_changes_between_passes_is_refused() -> None:
    meta, _ = build(b"original")
    with pytest.raises(BackupError, match="changed while it was being backed up"):
        b"".join(encode(meta, io.BytesIO(b"modified")))


def test_header_round_trips_through_json_exactly() -> None:
    meta, blob = build(b"x")
    assert blob.startswith(header_bytes(meta))


def test_cluster_names_must_be_key_safe() -> None:
    with pytest.raises(BackupError, match="cannot name a backup folder"):
        SnapshotInfo("../etc", index=1, term=1)
