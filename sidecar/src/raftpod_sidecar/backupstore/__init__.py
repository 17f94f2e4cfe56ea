"""Backup storage for snapshots: ``file://`` directories and S3, verified both ways.

``open_store(url).put(SnapshotInfo, source)`` stores a backup and moves the
"latest" manifest; ``get``/``latest``/``list``/``retain`` read and prune;
``restore.fetch_bytes``/``fetch_to_file`` serve ``--restore-from``. The object
format is in format.py, URL options in url.py, the layout and "latest" rules in
store.py.
"""

from .errors import (
    BackupAccessError,
    BackupCorruptError,
    BackupError,
    BackupNotFoundError,
    BackupUrlError,
)
from .format import FORMAT_VERSION, BackupMeta, Compression, SnapshotInfo, zstd_available
from .restore import fetch_bytes, fetch_to_file
from .store import BackupRef, BackupStore, open_store, resolve
from .url import Credentials, FileLocation, Location, S3Location, parse_url, redact_url

__all__ = [
    "FORMAT_VERSION",
    "BackupAccessError",
    "BackupCorruptError",
    "BackupError",
    "BackupMeta",
    "BackupNotFoundError",
    "BackupRef",
    "BackupStore",
    "BackupUrlError",
    "Compression",
    "Credentials",
    "FileLocation",
    "Location",
    "S3Location",
    "SnapshotInfo",
    "fetch_bytes",
    "fetch_to_file",
    "open_store",
    "parse_url",
    "redact_url",
    "resolve",
    "zstd_available",
]
