"""Where backups live: the BackupStore protocol, its naming rules, and "latest".

Layout under a location (a directory or an S3 prefix)::

    <cluster>/<UTC time>-<index>-<token>.snap   one backup object each (format.py)
    <cluster>/latest.json                       the manifest: which object is latest

The manifest is rewritten only after an object is completely stored, so it
always names a whole backup, and it makes "latest" unambiguous even when two
backups share a second (or a restored cluster writes a lower index). When it is
missing (a crash between the two writes, or backups copied by hand) "latest"
falls back to the newest *name* (time, then index), and says so in the log.
Retention orders backups the same way, with the manifest's target counted as
the newest, so it is never deleted.

The two stores share all of this (``ObjectStore``) and differ only in a few
primitives: FileStore (filestore.py) and S3Store (s3store.py).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import re
import secrets
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any, BinaryIO, Protocol, cast

from ..logs import event
from .errors import BackupCorruptError, BackupError, BackupNotFoundError, BackupUrlError
from .format import CHUNK_SIZE, BackupMeta, Compression, SnapshotInfo, decode, encode, measure
from .url import OBJECT_SUFFIX, Credentials, FileLocation, Location, S3Location, parse_url

MANIFEST = "latest.json"
MANIFEST_FORMAT = 1
_OBJECT_NAME = re.compile(r"^\d{8}T\d{6}Z-\d{12,}-[0-9a-f]+\.snap$")

log = logging.getLogger("raftpod.backup")

Clock = Callable[[], dt.datetime]
Refs = list["BackupRef"]  # aliases: the stores' ``list`` method shadows the builtin
Objects = list[tuple[str, int]]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class BackupRef:
    """One stored backup: its full URL, its key relative to the store, sizes and digest.

    ``size`` is the stored object's length; ``sha256`` (of the snapshot bytes)
    and ``meta`` are known after a put or get, not from a listing.
    """

    url: str
    key: str
    size: int
    sha256: str | None = None
    meta: BackupMeta | None = None


class BackupStore(Protocol):
    """Put, find, fetch (verified) and prune backups at one location."""

    url: str

    def put(self, info: SnapshotInfo, source: BinaryIO) -> BackupRef: ...

    def get(
        self,
        which: BackupRef | str | None,
        dest: BinaryIO,
        *,
        expect_cluster: str | None = None,
    ) -> BackupMeta: ...

    def latest(self, cluster: str | None = None) -> BackupRef: ...

    def list(self, cluster: str | None = None) -> Refs: ...

    def retain(self, cluster: str, keep: int) -> Refs: ...


def object_name(meta: BackupMeta, created: dt.datetime) -> str:
    """``<YYYYMMDDTHHMMSSZ>-<index>-<token>.snap``: sorts by time, then index; never collides."""
    stamp = created.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{meta.index:012d}-{secrets.token_hex(4)}{OBJECT_SUFFIX}"


def _spool(source: BinaryIO) -> BinaryIO:
    """A seekable temp-file copy of a stream (writing makes two passes over the source)."""
    spool = tempfile.SpooledTemporaryFile(max_size=CHUNK_SIZE * 16)  # noqa: SIM115 - caller closes
    while chunk := source.read(CHUNK_SIZE):
        spool.write(chunk)
    spool.seek(0)
    return cast(BinaryIO, spool)


class ObjectStore(ABC):
    """The store logic over a handful of object primitives (keys are relative, '/'-separated)."""

    def __init__(self, location: Location, clock: Clock = utc_now) -> None:
        self.url = location.url
        self.compression: Compression = location.compression
        self._clock = clock

    # -- primitives ---------------------------------------------------------------
    @abstractmethod
    def object_url(self, key: str) -> str: ...

    @abstractmethod
    def _upload(self, key: str, meta: BackupMeta, chunks: Iterator[bytes]) -> int:
        """Store the object atomically (all or nothing); its size."""

    @abstractmethod
    def _download(self, key: str) -> tuple[Iterator[bytes], dict[str, str]]:
        """The object's bytes as chunks and its user metadata; BackupNotFoundError if absent."""

    @abstractmethod
    def _keys(self) -> Objects:
        """Every (key, size) under the location, recursively."""

    @abstractmethod
    def _delete(self, key: str) -> None: ...

    @abstractmethod
    def _write_small(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def _read_small(self, key: str) -> bytes | None: ...

    # -- the store ----------------------------------------------------------------
    def put(self, info: SnapshotInfo, source: BinaryIO) -> BackupRef:
        """Store the rest of ``source`` as a new backup, then point the manifest at it."""
        started = time.monotonic()
        with contextlib.ExitStack() as stack:
            if not source.seekable():
                source = stack.enter_context(_spool(source))
            sha256, size = measure(source)
            created = self._clock()
            meta = BackupMeta.describe(
                info, sha256=sha256, size=size, compression=self.compression, created=created
            )
            name = object_name(meta, created)
            key = f"{info.cluster}/{name}"
            stored = self._upload(key, meta, encode(meta, source))
        manifest = {
            "format": MANIFEST_FORMAT,
            "object": name,
            "cluster": meta.cluster,
            "index": meta.index,
            "term": meta.term,
            "sha256": meta.sha256,
            "size": stored,
            "created": meta.created,
        }
        self._write_small(f"{info.cluster}/{MANIFEST}", json.dumps(manifest, indent=2).encode())
        ref = BackupRef(self.object_url(key), key, stored, sha256, meta)
        event(
            log,
            "backup stored",
            url=ref.url,
            index=meta.index,
            term=meta.term,
            bytes=stored,
            snapshot_bytes=size,
            compression=meta.compression.value,
            seconds=round(time.monotonic() - started, 3),
        )
        return ref

    def get(
        self,
        which: BackupRef | str | None,
        dest: BinaryIO,
        *,
        expect_cluster: str | None = None,
    ) -> BackupMeta:
        """Write a backup's snapshot bytes to ``dest`` and verify them; None means latest.

        On any error ``dest`` may hold partial bytes that must be discarded.
        """
        if which is None:
            which = self.latest(expect_cluster)
        key = which.key if isinstance(which, BackupRef) else which.strip("/")
        where = self.object_url(key)
        chunks, user_metadata = self._download(key)
        meta = decode(chunks, dest, where=where, expect_cluster=expect_cluster)
        recorded = user_metadata.get("sha256")
        if recorded is not None and recorded != meta.sha256:
            raise BackupCorruptError(
                f"{where}: object metadata says sha256 {recorded}, the backup holds {meta.sha256}"
            )
        event(log, "backup verified", url=where, index=meta.index, sha256=meta.sha256)
        return meta

    def latest(self, cluster: str | None = None) -> BackupRef:
        """The manifest's backup, or the newest by name without one (logged)."""
        folder, refs, target = self._folder(cluster, strict=False)
        if not refs:
            raise BackupNotFoundError(f"no backups under {self._folder_url(folder)}")
        if target is None:
            event(
                log,
                "no usable backup manifest; choosing the newest backup by name",
                logging.WARNING,
                url=self._folder_url(folder),
            )
        return refs[-1]

    def list(self, cluster: str | None = None) -> Refs:
        """Backups oldest first (manifest target last) of ``cluster``, or of every cluster."""
        if cluster is not None:
            return self._folder(cluster, strict=True)[1]
        folders = self._scan()
        return [ref for f in sorted(folders) for ref in self._ordered(f, folders[f])[0]]

    def retain(self, cluster: str, keep: int) -> Refs:
        """Delete all but the newest ``keep`` backups of ``cluster``; the deleted ones."""
        if keep < 1:
            raise BackupUrlError(f"retain must keep at least 1 backup, got {keep}")
        _, refs, _ = self._folder(cluster, strict=True)
        doomed = refs[:-keep]
        for ref in doomed:
            self._delete(ref.key)
        if doomed:
            event(log, "old backups deleted", cluster=cluster, deleted=len(doomed), kept=keep)
        return doomed

    # -- folders and ordering -------------------------------------------------------
    def _folder_url(self, folder: str) -> str:
        return self.object_url(folder) if folder else self.url

    def _scan(self) -> dict[str, Objects]:
        """Folder -> its backup objects (name, size), for every folder holding any."""
        folders: dict[str, Objects] = {}
        for key, size in self._keys():
            folder, _, name = key.rpartition("/")
            if _OBJECT_NAME.match(name):
                folders.setdefault(folder, []).append((name, size))
        return folders

    def _folder(self, cluster: str | None, *, strict: bool) -> tuple[str, Refs, str | None]:
        """Pick the folder of ``cluster``'s backups: its name, ordered refs, manifest target.

        Not strict (for reading), a location holding a single folder is taken
        whatever its name, so a restore may point at the cluster's own folder;
        the header's cluster is verified afterwards anyway.
        """
        folders = self._scan()
        if cluster is not None and (cluster in folders or strict):
            folder = cluster
        elif len(folders) == 1:
            folder = next(iter(folders))
        elif not folders:
            raise BackupNotFoundError(f"no backups under {self.url}")
        else:
            names = ", ".join(sorted(f or "(top level)" for f in folders))
            raise BackupError(
                f"backups of several clusters under {self.url} ({names}): name the cluster, "
                "or point at one cluster's folder or one .snap object"
            )
        refs, target = self._ordered(folder, folders.get(folder, []))
        return folder, refs, target

    def _ordered(self, folder: str, objects: Objects) -> tuple[Refs, str | None]:
        prefix = f"{folder}/" if folder else ""
        target = self._manifest_target(prefix)
        names = {name for name, _ in objects}
        if target is not None and target not in names:
            event(
                log,
                "backup manifest names a missing object; ignoring it",
                logging.WARNING,
                url=self.object_url(prefix + MANIFEST),
                object=target,
            )
            target = None
        ordered = sorted(objects, key=lambda item: (item[0] == target, item[0]))
        refs = [BackupRef(self.object_url(prefix + n), prefix + n, s) for n, s in ordered]
        return refs, target

    def _manifest_target(self, prefix: str) -> str | None:
        raw = self._read_small(prefix + MANIFEST)
        if raw is None:
            return None
        try:
            doc: Any = json.loads(raw)
            name = doc["object"]
        except (ValueError, KeyError, TypeError):
            name = None
        if not isinstance(name, str) or not _OBJECT_NAME.match(name):
            event(
                log,
                "backup manifest is unreadable; ignoring it",
                logging.WARNING,
                url=self.object_url(prefix + MANIFEST),
            )
            return None
        return name


def open_store(
    location: str | Location,
    *,
    credentials: Credentials | None = None,
    clock: Clock = utc_now,
) -> ObjectStore:
    """The store for a URL (or parsed location); S3 credentials default to boto3's chain."""
    if isinstance(location, str):
        location = parse_url(location)
    if isinstance(location, FileLocation):
        from .filestore import FileStore

        return FileStore(location, clock)
    from .s3store import S3Store

    return S3Store(location, credentials=credentials, clock=clock)


def resolve(url: str, *, credentials: Credentials | None = None) -> tuple[ObjectStore, str | None]:
    """The store and object key a restore URL names; key None means "latest there"."""
    location = parse_url(url)
    if isinstance(location, FileLocation):
        if location.root.name.endswith(OBJECT_SUFFIX):
            parent = FileLocation(location.root.parent, location.compression)
            return open_store(parent), location.root.name
        return open_store(location), None
    assert isinstance(location, S3Location)
    head, _, last = location.prefix.rpartition("/")
    if last.endswith(OBJECT_SUFFIX):
        return open_store(replace(location, prefix=head), credentials=credentials), last
    return open_store(location, credentials=credentials), None
