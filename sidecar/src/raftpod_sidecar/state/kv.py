"""The key-value store: etcd-like MVCC numbers without the history.

Each key holds its latest value with ``create_revision``, ``mod_revision``,
``version`` (writes since creation) and ``lease``; the store ``revision``
counts write commands (one per put, per effective delete, per txn or lease
revoke that changed something). Old values are not kept: watches resume from
the bounded event history instead. A sorted key list beside the dict serves
prefix ranges with bisect; inserting costs a memmove, cheap at 100k keys.

The store only writes at a revision the caller gives; the state machine
decides when a command bumps the revision.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterator
from typing import Any, NamedTuple

from raftpod_sidecar.state.watch import Event, EventType


class KeyValue(NamedTuple):
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int


class KVStore:
    """Current values by key, plus the sorted key index."""

    def __init__(self) -> None:
        self.revision = 0
        self._data: dict[str, KeyValue] = {}
        self._keys: list[str] = []

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: str) -> KeyValue | None:
        return self._data.get(key)

    def range(self, prefix: str = "", limit: int = 0) -> tuple[list[tuple[str, KeyValue]], bool]:
        """Keys starting with ``prefix`` in key order, at most ``limit`` (0: all); and "more"."""
        keys, data = self._keys, self._data
        i = bisect_left(keys, prefix)
        end = len(keys)
        items: list[tuple[str, KeyValue]] = []
        while i < end and keys[i].startswith(prefix):
            if limit and len(items) == limit:
                return items, True
            items.append((keys[i], data[keys[i]]))
            i += 1
        return items, False

    def put(self, key: str, value: bytes, lease: int, revision: int) -> Event:
        old = self._data.get(key)
        if old is None:
            insort(self._keys, key)
            kv = KeyValue(value, revision, revision, 1, lease)
        else:
            kv = KeyValue(value, old.create_revision, revision, old.version + 1, lease)
        self._data[key] = kv
        return Event(EventType.PUT, key, value, revision, kv.create_revision, kv.version, lease)

    def delete(self, key: str, revision: int) -> Event | None:
        """Delete ``key`` at ``revision``; None (no event) if it does not exist."""
        if self._data.pop(key, None) is None:
            return None
        keys = self._keys
        del keys[bisect_left(keys, key)]
        return Event(EventType.DELETE, key, b"", revision, 0, 0, 0)

    def leased(self) -> Iterator[tuple[str, int]]:
        """``(key, lease)`` for every key bound to a lease."""
        return ((key, kv.lease) for key, kv in self._data.items() if kv.lease)

    def to_data(self) -> list[Any]:
        """``[revision, [key, value, create, mod, version, lease, key, ...]]`` in key order."""
        flat: list[Any] = []
        data = self._data
        for key in self._keys:
            flat.append(key)
            flat.extend(data[key])
        return [self.revision, flat]

    def restore(self, data: list[Any]) -> None:
        revision, flat = data
        keys = flat[0::6]
        self._data = dict(zip(keys, map(KeyValue, *(flat[i::6] for i in range(1, 6))), strict=True))
        self._keys = keys
        self.revision = revision
