"""The backup object: a self-describing header, then the (compressed) snapshot bytes.

Layout (all integers big-endian)::

    b"RAFTPODB" | u16 format version | u32 header length | u32 CRC-32 of header
    | header (UTF-8 JSON, the BackupMeta) | body (snapshot bytes, compressed)

The header travels inside the object so a backup is verifiable wherever it is
copied (S3 user metadata repeats it for people browsing a bucket, but is not
trusted on its own). ``sha256`` and ``size`` describe the *uncompressed*
snapshot, so one check covers the compression, the transfer and the store.
Writing needs the digest before the first byte, hence :func:`measure` makes a
first pass over the source; :func:`encode` re-checks it on the second pass.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any, BinaryIO, Protocol
from urllib.parse import quote

from .. import __version__
from ..raft.messages import Member, SnapshotMeta
from .errors import BackupCorruptError, BackupError, BackupUrlError

MAGIC = b"RAFTPODB"
FORMAT_VERSION = 1
_FIXED = struct.Struct(">8sHII")
MAX_HEADER_BYTES = 1 << 20
CHUNK_SIZE = 1 << 16
_CLUSTER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class Compression(StrEnum):
    NONE = "none"
    GZIP = "gzip"
    ZSTD = "zstd"


def zstd_available() -> bool:
    """True when the optional ``zstandard`` package is installed."""
    try:
        import zstandard  # noqa: F401
    except ImportError:
        return False
    return True


def compression_from_text(text: str, where: str) -> Compression:
    """The compression named ``text``; raises :class:`BackupUrlError` naming ``where``."""
    try:
        compression = Compression(text)
    except ValueError:
        known = ", ".join(c.value for c in Compression)
        raise BackupUrlError(f"compression={text!r} in {where!r}: use one of {known}") from None
    if compression is Compression.ZSTD and not zstd_available():
        raise BackupUrlError(
            "compression=zstd needs the zstandard package (pip install 'raftpod[zstd]'); "
            "use gzip or none otherwise"
        )
    return compression


@dataclass(frozen=True)
class SnapshotInfo:
    """What the caller knows about a snapshot it wants backed up."""

    cluster: str
    index: int
    term: int
    members: tuple[Member, ...] = ()
    cluster_uid: str = ""
    node: str = ""

    def __post_init__(self) -> None:
        if not _CLUSTER_NAME.match(self.cluster):
            raise BackupUrlError(
                f"cluster name {self.cluster!r} cannot name a backup folder: use letters, "
                "digits, '.', '_' and '-' (a Kubernetes name works)"
            )

    @classmethod
    def from_snapshot_meta(
        cls, meta: SnapshotMeta, *, cluster: str, cluster_uid: str = "", node: str = ""
    ) -> SnapshotInfo:
        """The info of a Raft snapshot (index, term and membership come from its meta)."""
        return cls(cluster, meta.index, meta.term, meta.conf.members, cluster_uid, node)


@dataclass(frozen=True)
class BackupMeta:
    """Everything recorded about one backup; the header of the backup object."""

    cluster: str
    cluster_uid: str
    index: int
    term: int
    members: tuple[Member, ...]
    node: str
    created: str  # RFC 3339, UTC
    raftpod_version: str
    sha256: str  # of the uncompressed snapshot bytes
    size: int  # of the uncompressed snapshot bytes
    compression: Compression
    format: int = FORMAT_VERSION

    @classmethod
    def describe(
        cls,
        info: SnapshotInfo,
        *,
        sha256: str,
        size: int,
        compression: Compression,
        created: dt.datetime,
    ) -> BackupMeta:
        return cls(
            cluster=info.cluster,
            cluster_uid=info.cluster_uid,
            index=info.index,
            term=info.term,
            members=tuple(info.members),
            node=info.node,
            created=created.astimezone(dt.UTC).isoformat(timespec="microseconds")[:-6] + "Z",
            raftpod_version=__version__,
            sha256=sha256,
            size=size,
            compression=compression,
        )

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["members"] = [m._asdict() for m in self.members]
        doc["compression"] = self.compression.value
        return doc

    @classmethod
    def from_json(cls, doc: Any, where: str) -> BackupMeta:
        """Parse a header; anything missing or mistyped is :class:`BackupCorruptError`."""
        if not isinstance(doc, dict):
            raise BackupCorruptError(f"{where}: backup header is not a JSON object")

        def field(name: str, kind: type) -> Any:
            value = doc.get(name)
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise BackupCorruptError(f"{where}: backup header field {name!r} is missing")
            return value

        members = []
        for m in field("members", list):
            if not (
                isinstance(m, dict)
                and isinstance(m.get("id"), str)
                and isinstance(m.get("address"), str)
                and isinstance(m.get("voter"), bool)
            ):
                raise BackupCorruptError(f"{where}: backup header has a malformed member {m!r}")
            members.append(Member(m["id"], m["address"], m["voter"]))
        sha256 = field("sha256", str)
        if not _SHA256.match(sha256):
            raise BackupCorruptError(f"{where}: backup header sha256 {sha256!r} is malformed")
        try:
            compression = Compression(field("compression", str))
        except ValueError:
            raise BackupCorruptError(
                f"{where}: unknown compression {doc['compression']!r}"
            ) from None
        return cls(
            cluster=field("cluster", str),
            cluster_uid=field("cluster_uid", str),
            index=field("index", int),
            term=field("term", int),
            members=tuple(members),
            node=field("node", str),
            created=field("created", str),
            raftpod_version=field("raftpod_version", str),
            sha256=sha256,
            size=field("size", int),
            compression=compression,
            format=field("format", int),
        )

    def user_metadata(self) -> dict[str, str]:
        """The S3 ``x-amz-meta-*`` form: flat ASCII strings (members as ``id=role``)."""
        members = ",".join(f"{m.id}={'voter' if m.voter else 'learner'}" for m in self.members)
        values = {
            "raftpod-format": str(self.format),
            "raftpod-version": self.raftpod_version,
            "cluster": self.cluster,
            "cluster-uid": self.cluster_uid,
            "index": str(self.index),
            "term": str(self.term),
            "members": members,
            "node": self.node,
            "created": self.created,
            "sha256": self.sha256,
            "size": str(self.size),
            "compression": self.compression.value,
        }
        return {k: quote(v, safe="=,:.-_") for k, v in values.items()}


def header_bytes(meta: BackupMeta) -> bytes:
    """The fixed prefix plus the JSON header of a backup object."""
    header = json.dumps(meta.to_json(), sort_keys=True, separators=(",", ":")).encode()
    return _FIXED.pack(MAGIC, meta.format, len(header), zlib.crc32(header)) + header


def measure(source: BinaryIO) -> tuple[str, int]:
    """SHA-256 and length of the rest of ``source``, which is then rewound to where it was."""
    start = source.tell()
    digest = hashlib.sha256()
    size = 0
    while chunk := source.read(CHUNK_SIZE):
        digest.update(chunk)
        size += len(chunk)
    source.seek(start)
    return digest.hexdigest(), size


class _Codec(Protocol):
    def compress(self, data: bytes, /) -> bytes: ...
    def flush(self) -> bytes: ...


class _Identity:
    def compress(self, data: bytes, /) -> bytes:
        return data

    def flush(self) -> bytes:
        return b""


def _compressor(compression: Compression) -> _Codec:
    if compression is Compression.GZIP:
        return zlib.compressobj(6, zlib.DEFLATED, 31)
    if compression is Compression.ZSTD:
        import zstandard

        return zstandard.ZstdCompressor(level=3).compressobj()
    return _Identity()


def encode(meta: BackupMeta, source: BinaryIO) -> Iterator[bytes]:
    """The backup object as chunks (bounded size); the source must still match ``meta``."""
    yield header_bytes(meta)
    codec = _compressor(meta.compression)
    digest = hashlib.sha256()
    size = 0
    while chunk := source.read(CHUNK_SIZE):
        digest.update(chunk)
        size += len(chunk)
        if out := codec.compress(chunk):
            yield out
    if tail := codec.flush():
        yield tail
    if size != meta.size or digest.hexdigest() != meta.sha256:
        raise BackupError("the snapshot changed while it was being backed up; nothing was kept")


class _Inflater(Protocol):
    def decompress(self, data: bytes, /) -> bytes: ...
    @property
    def eof(self) -> bool: ...
    @property
    def unused_data(self) -> bytes: ...


class _Passthrough:
    eof = False
    unused_data = b""

    def decompress(self, data: bytes, /) -> bytes:
        return data


def _inflater(compression: Compression) -> tuple[_Inflater, tuple[type[Exception], ...]]:
    """A decompressor and the exceptions by which it reports damaged input."""
    if compression is Compression.GZIP:
        return zlib.decompressobj(31), (zlib.error,)
    if compression is Compression.ZSTD:
        try:
            import zstandard
        except ImportError:
            raise BackupError(
                "this backup is zstd-compressed; install the zstandard package to read it"
            ) from None
        return zstandard.ZstdDecompressor().decompressobj(), (zstandard.ZstdError,)
    return _Passthrough(), ()


class _Reader:
    """Pulls exact byte counts out of an iterable of chunks."""

    def __init__(self, chunks: Iterable[bytes], where: str) -> None:
        self._chunks = iter(chunks)
        self._buffer = bytearray()
        self._where = where

    def take(self, n: int) -> bytes:
        while len(self._buffer) < n:
            chunk = next(self._chunks, None)
            if chunk is None:
                raise BackupCorruptError(
                    f"{self._where}: backup is truncated (it ends inside its header)"
                )
            self._buffer += chunk
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        return data

    def rest(self) -> Iterator[bytes]:
        if self._buffer:
            yield bytes(self._buffer)
            self._buffer.clear()
        yield from self._chunks


def read_header(reader: _Reader, where: str) -> BackupMeta:
    magic, version, length, crc = _FIXED.unpack(reader.take(_FIXED.size))
    if magic != MAGIC:
        raise BackupCorruptError(f"{where}: not a raftpod backup (bad magic bytes)")
    if version > FORMAT_VERSION:
        raise BackupCorruptError(
            f"{where}: backup format version {version} is newer than this raftpod reads "
            f"({FORMAT_VERSION}); restore with a newer raftpod"
        )
    if version < 1 or length > MAX_HEADER_BYTES:
        raise BackupCorruptError(f"{where}: backup header is malformed")
    header = reader.take(length)
    if zlib.crc32(header) != crc:
        raise BackupCorruptError(f"{where}: backup header checksum does not match")
    try:
        doc = json.loads(header)
    except ValueError:
        raise BackupCorruptError(f"{where}: backup header is not JSON") from None
    meta = BackupMeta.from_json(doc, where)
    if meta.format != version:
        raise BackupCorruptError(f"{where}: backup header disagrees on the format version")
    return meta


def decode(
    chunks: Iterable[bytes], dest: BinaryIO, *, where: str, expect_cluster: str | None = None
) -> BackupMeta:
    """Write the snapshot bytes of a backup object to ``dest``; verify everything.

    Raises :class:`BackupCorruptError` on any mismatch. ``dest`` may then hold
    partial bytes: callers write to a scratch file and keep it only on success.
    """
    reader = _Reader(chunks, where)
    meta = read_header(reader, where)
    if expect_cluster is not None and meta.cluster != expect_cluster:
        raise BackupCorruptError(
            f"{where}: backup belongs to cluster {meta.cluster!r}, expected {expect_cluster!r}"
        )
    inflater, damaged = _inflater(meta.compression)
    digest = hashlib.sha256()
    size = 0
    try:
        for chunk in reader.rest():
            if inflater.eof and chunk:
                raise BackupCorruptError(f"{where}: backup has bytes after its end")
            out = inflater.decompress(chunk)
            size += len(out)
            if size > meta.size:
                raise BackupCorruptError(f"{where}: backup is longer than its header says")
            digest.update(out)
            dest.write(out)
    except damaged as exc:
        raise BackupCorruptError(f"{where}: backup body does not decompress: {exc}") from None
    if inflater.unused_data:
        raise BackupCorruptError(f"{where}: backup has bytes after its end")
    if meta.compression is not Compression.NONE and not inflater.eof:
        raise BackupCorruptError(f"{where}: backup is truncated (compressed stream unfinished)")
    if size != meta.size:
        raise BackupCorruptError(
            f"{where}: backup is truncated: {size} of {meta.size} snapshot bytes"
        )
    if digest.hexdigest() != meta.sha256:
        raise BackupCorruptError(
            f"{where}: backup is corrupt: sha256 {digest.hexdigest()} != recorded {meta.sha256}"
        )
    return meta
