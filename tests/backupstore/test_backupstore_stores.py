"""Both stores, the same promises: round trips, "latest", retention, refusing damage."""

from __future__ import annotations

import hashlib
import io
import os
import random
from pathlib import Path
from typing import BinaryIO

import pytest

from raftpod_sidecar.backupstore import (
    BackupCorruptError,
    BackupError,
    BackupNotFoundError,
    BackupRef,
    SnapshotInfo,
    fetch_bytes,
    fetch_to_file,
)
from raftpod_sidecar.backupstore.store import ObjectStore
from raftpod_sidecar.raft.messages import Member
from tests.backupstore.backends import Backend, make_backend, needs_zstd

MEMBERS = (Member("n1", "n1:7000", True), Member("n2", "n2:7000", True))


@pytest.fixture(params=["file", pytest.param("s3", marks=pytest.mark.s3)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return make_backend(request, tmp_path)


def payload(size: int, seed: int) -> bytes:
    rng = random.Random(seed)
    return rng.randbytes(size // 2) + bytes([seed % 256]) * (size - size // 2)


def put_stream(
    store: ObjectStore, source: BinaryIO, index: int, cluster: str = "prod"
) -> BackupRef:
    info = SnapshotInfo(cluster, index=index, term=3, members=MEMBERS, cluster_uid="u-1")
    return store.put(info, source)


def put(store: ObjectStore, data: bytes, index: int, cluster: str = "prod") -> BackupRef:
    return put_stream(store, io.BytesIO(data), index, cluster)


def fetch(store: ObjectStore, which: BackupRef | str | None, cluster: str | None = None) -> bytes:
    out = io.BytesIO()
    store.get(which, out, expect_cluster=cluster)
    return out.getvalue()


def test_round_trip(backend: Backend) -> None:
    store = backend.open()
    data = payload(40_000, 1)
    ref = put(store, data, index=17)
    assert ref.sha256 == hashlib.sha256(data).hexdigest()
    assert ref.key.startswith("prod/20261126T080000Z-000000000017-") and ref.key.endswith(".snap")
    assert ref.url == backend.url().split("?")[0] + "/" + ref.key
    assert len(backend.read(f"backups/{ref.key}")) == ref.size > len(data)
    out = io.BytesIO()
    meta = store.get(ref, out, expect_cluster="prod")
    assert out.getvalue() == data
    assert (meta.index, meta.term, meta.members, meta.cluster_uid) == (17, 3, MEMBERS, "u-1")
    assert meta.created == "2026-11-26T08:00:00.000000Z"
    assert fetch(store, ref.key) == data
    assert store.list("prod") == [BackupRef(ref.url, ref.key, ref.size)]


def test_a_stream_source_is_spooled(backend: Backend) -> None:
    """A pipe cannot seek; the store copies it aside to make its two passes."""
    store = backend.open()
    data = payload(30_000, 9)  # fits the pipe's buffer, so one thread suffices
    read_fd, write_fd = os.pipe()
    with os.fdopen(write_fd, "wb") as writer:
        writer.write(data)
    with os.fdopen(read_fd, "rb") as reader:
        assert not reader.seekable()
        ref = put_stream(store, reader, index=3)
    assert ref.sha256 == hashlib.sha256(data).hexdigest()
    assert fetch(store, ref) == data


@pytest.mark.parametrize("compression", ["gzip", pytest.param("zstd", marks=needs_zstd)])
def test_compressed_round_trip(backend: Backend, compression: str) -> None:
    store = backend.open(compression=compression)
    data = payload(200_000, 2)
    ref = put(store, data, index=5)
    assert ref.size < len(data) * 0.75
    out = io.BytesIO()
    assert store.get(None, out).compression.value == compression
    assert out.getvalue() == data


def test_manifest_makes_latest_unambiguous(backend: Backend) -> None:
    """Two backups in one second, the later with a lower index (e.g. a restored cluster)."""
    store = backend.open()
    put(store, b"first", index=900)
    second = put(store, b"second", index=5)
    assert second.key < store.list("prod")[0].key  # by name, the first would win
    assert store.latest("prod").key == second.key
    assert fetch(store, None) == b"second"
    backend.delete("backups/prod/latest.json")
    assert fetch(store, None) == b"first"  # the documented fallback: newest by name


def test_retention_keeps_exactly_n_and_never_the_manifest_target(backend: Backend) -> None:
    store = backend.open()
    refs = []
    for i in range(5):
        refs.append(put(store, f"backup {i}".encode(), index=100 + i))
        backend.clock.advance(60)
    deleted = store.retain("prod", 3)
    assert [r.key for r in deleted] == [r.key for r in refs[:2]]
    assert [r.key for r in store.list("prod")] == [r.key for r in refs[2:]]
    # Same second, lower index: the manifest target sorts first by name but is kept.
    latest = put(store, b"restored", index=1)
    store.retain("prod", 1)
    assert [r.key for r in store.list("prod")] == [latest.key]
    assert fetch(store, None) == b"restored"
    with pytest.raises(BackupError, match="at least 1"):
        store.retain("prod", 0)


def test_retention_touches_only_its_cluster(backend: Backend) -> None:
    store = backend.open()
    put(store, b"a1", index=1, cluster="a")
    put(store, b"b1", index=1, cluster="b")
    backend.clock.advance(1)
    put(store, b"a2", index=2, cluster="a")
    assert len(store.retain("a", 1)) == 1
    assert [fetch(store, r) for r in store.list()] == [b"a2", b"b1"]


def test_several_clusters_need_a_name(backend: Backend) -> None:
    store = backend.open()
    put(store, b"a", index=1, cluster="a")
    put(store, b"b", index=1, cluster="b")
    with pytest.raises(BackupError, match=r"several clusters .*\(a, b\)"):
        store.latest()
    assert fetch(store, None, cluster="b") == b"b"


@pytest.mark.parametrize("where", ["header", "body"])
def test_a_corrupted_object_is_refused(backend: Backend, where: str) -> None:
    store = backend.open()
    ref = put(store, payload(30_000, 3), index=8)
    blob = bytearray(backend.read(f"backups/{ref.key}"))
    blob[40 if where == "header" else len(blob) - 100] ^= 0x20
    backend.write(f"backups/{ref.key}", bytes(blob))
    with pytest.raises(BackupCorruptError, match=ref.key):
        fetch(store, ref)


def test_a_truncated_object_is_refused(backend: Backend) -> None:
    store = backend.open(compression="gzip")
    ref = put(store, payload(30_000, 4), index=8)
    blob = backend.read(f"backups/{ref.key}")
    backend.write(f"backups/{ref.key}", blob[: len(blob) - 10])
    with pytest.raises(BackupCorruptError, match="truncated"):
        fetch(store, None)


def test_missing_backups_are_not_found(backend: Backend) -> None:
    store = backend.open()
    with pytest.raises(BackupNotFoundError, match="no backups under"):
        store.latest()
    put(store, b"x", index=1)
    with pytest.raises(BackupNotFoundError):
        fetch(store, "prod/20260101T000000Z-000000000001-00000000.snap")


def test_restore_from_a_prefix_an_object_or_a_cluster_folder(backend: Backend) -> None:
    store = backend.open()
    old = put(store, b"old", index=1)
    backend.clock.advance(5)
    put(store, b"new", index=2)
    creds = backend.server.credentials() if backend.server else None
    url = backend.url
    assert fetch_bytes(url("backups"), credentials=creds)[1] == b"new"
    assert fetch_bytes(url("backups/prod"), credentials=creds)[1] == b"new"
    assert fetch_bytes(url(f"backups/{old.key}"), credentials=creds)[1] == b"old"
    dest = backend.tmp / "restored.snap"
    meta = fetch_to_file(url("backups"), dest, expect_cluster="prod", credentials=creds)
    assert dest.read_bytes() == b"new" and meta.index == 2
    with pytest.raises(BackupCorruptError, match="expected 'staging'"):
        fetch_bytes(url("backups/prod"), expect_cluster="staging", credentials=creds)


def test_a_failed_restore_leaves_nothing(backend: Backend) -> None:
    store = backend.open()
    ref = put(store, payload(10_000, 5), index=3)
    blob = backend.read(f"backups/{ref.key}")
    backend.write(f"backups/{ref.key}", blob[:-1] + bytes([blob[-1] ^ 1]))
    dest = backend.tmp / "out" / "restored.snap"
    dest.parent.mkdir()
    creds = backend.server.credentials() if backend.server else None
    with pytest.raises(BackupCorruptError):
        fetch_to_file(backend.url(), dest, credentials=creds)
    assert list(dest.parent.iterdir()) == []
