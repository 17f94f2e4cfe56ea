"""Durable Raft storage: a segmented write-ahead log plus snapshot files.

``DurableStorage`` serves the core's read protocol from memory and makes every
mutation durable (fsynced) before it becomes visible or is acknowledged.
"""

from .durable import DurableStorage
from .errors import SnapshotCorruptError, StorageClosedError, WalCorruptError

__all__ = ["DurableStorage", "SnapshotCorruptError", "StorageClosedError", "WalCorruptError"]
