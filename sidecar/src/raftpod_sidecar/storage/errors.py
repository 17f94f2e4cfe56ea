"""Errors raised by durable storage; each names the file (and offset) at fault."""

from __future__ import annotations

from pathlib import Path


class WalCorruptError(Exception):
    """The log is damaged where it cannot be a torn tail; refusing to serve it."""

    def __init__(self, path: Path, offset: int, reason: str) -> None:
        super().__init__(
            f"write-ahead log {path} is corrupt at offset {offset}: {reason}; "
            "refusing to start (restore this member from a snapshot or a peer)"
        )
        self.path = path
        self.offset = offset
        self.reason = reason


class SnapshotCorruptError(Exception):
    """A snapshot file failed its header or SHA-256 check."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"snapshot {path} is corrupt: {reason}")
        self.path = path
        self.reason = reason


class StorageClosedError(RuntimeError):
    """The storage was closed, or a write failed and it refuses further writes."""
