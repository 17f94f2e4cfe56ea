"""The replicated state machine: ``apply(entry)`` for every committed entry, in order.

``apply`` is deterministic (no clock, no randomness, no unordered iteration)
so every replica computes the same state and the same results, and it is on
the hot path of every write, so it stays lean. A command that fails (compare,
unknown lease, malformed bytes) yields an error result and changes nothing.

Exactly-once: an entry with a non-empty ``client`` is looked up in the
``SessionTable`` first; a duplicate returns the cached result of the
original and changes nothing (no revision, no events). The app API turns
``X-Request-Id`` into ``client=<request id>, seq=1``.

Results are plain msgpack-able values (they are cached in sessions and
snapshots); treat them as read-only. Shapes (every one carries the entry's
raft ``index``; ``revision`` is the store revision after the command):

- put: ``{"revision", "index"}``
- delete: ``{"revision", "index", "deleted": 0|1}``
- txn: ``{"succeeded", "revision", "index", "results": [...]}`` with per op
  ``{"revision"}`` (put), ``{"deleted"}`` (delete), ``{"kv": item|None}``
  (get), ``{"items": [item], "more"}`` (range); an item is ``{"key", "value",
  "create_revision", "mod_revision", "version", "lease"}``
- lease_grant: ``{"id", "ttl", "revision", "index"}`` (``id`` = the index)
- lease_revoke: ``{"revision", "index", "deleted": n}``
- log_append: ``{"index", "term"}``
- errors: ``{"error": CODE, "message", "index", ...}``; ``compare_failed``
  adds ``revision`` and the key's current ``mod_revision`` (0 if absent),
  ``lease_not_found`` adds ``revision``.

Empty entries (the leader's no-op) and CONF_CHANGE entries only advance
``applied_index`` and give ``Applied(None)``.

Snapshots hold the KV store with revisions, leases with TTLs, the opaque
log, the session table and the applied index as one versioned msgpack
array; the watch history is left out (see ``watch``).
"""

from __future__ import annotations

import gc
import operator
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

import msgpack

from raftpod_sidecar.raft.messages import Entry, EntryType
from raftpod_sidecar.raft.sessions import SessionTable
from raftpod_sidecar.state.commands import (
    Command,
    Compare,
    CompareOp,
    CompareTarget,
    Delete,
    Get,
    LeaseGrant,
    LeaseRevoke,
    LogAppend,
    Put,
    Txn,
    decode,
)
from raftpod_sidecar.state.errors import ErrorCode, InvalidCommandError
from raftpod_sidecar.state.kv import KeyValue, KVCapture, KVStore
from raftpod_sidecar.state.leases import LeaseTable
from raftpod_sidecar.state.oplog import DEFAULT_RETAINED_COMMANDS, LogRecord, OpLog
from raftpod_sidecar.state.watch import DEFAULT_HISTORY_EVENTS, Event, WatchHistory

SNAPSHOT_FORMAT = 1
DEFAULT_MAX_SESSIONS = 10_000

Result = dict[str, Any]


class Applied(NamedTuple):
    """What applying one entry produced, for the node to answer and notify."""

    result: Result | None
    events: tuple[Event, ...] = ()  # for live watchers, in order
    record: LogRecord | None = None  # a new opaque command, for log streamers


_NOTHING = Applied(None)

_COMPARE_FIELD = {
    CompareTarget.VALUE: 0,
    CompareTarget.CREATE_REVISION: 1,
    CompareTarget.MOD_REVISION: 2,
    CompareTarget.VERSION: 3,
    CompareTarget.LEASE: 4,
}
_COMPARE_OP: dict[CompareOp, Callable[[Any, Any], bool]] = {
    CompareOp.EQUAL: operator.eq,
    CompareOp.NOT_EQUAL: operator.ne,
    CompareOp.LESS: operator.lt,
    CompareOp.GREATER: operator.gt,
}


def _error(code: ErrorCode, message: str, index: int, **extra: int) -> Result:
    return {"error": code.value, "message": message, "index": index, **extra}


def _item(key: str, kv: KeyValue) -> Result:
    return {
        "key": key,
        "value": kv.value,
        "create_revision": kv.create_revision,
        "mod_revision": kv.mod_revision,
        "version": kv.version,
        "lease": kv.lease,
    }


def pack_state(parts: list[Any]) -> memoryview:
    """``snapshot_parts()`` as msgpack (the key-value copy flattened first), one small
    value per call: the same bytes as ``snapshot()``, but a thread packing a large
    state holds the GIL only briefly at a time, so the event loop keeps running.
    """
    packer = msgpack.Packer(use_bin_type=True, autoreset=False)
    _pack_value(packer, _flattened(parts))
    packed: memoryview = packer.getbuffer()
    return packed


def _flattened(parts: list[Any]) -> list[Any]:
    return [p.to_data() if isinstance(p, KVCapture) else p for p in parts]


def _pack_value(packer: msgpack.Packer, value: Any) -> None:
    if isinstance(value, list):
        packer.pack_array_header(len(value))
        for item in value:
            _pack_value(packer, item)
    else:
        packer.pack(value)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic GC: rebuilding ~100k records otherwise triggers it over and
    over (it tripled restore time), and none of them can form a cycle."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class StateMachine:
    """KV store, leases, watch history, opaque log and sessions behind one ``apply``."""

    def __init__(
        self,
        *,
        history_events: int = DEFAULT_HISTORY_EVENTS,
        retained_commands: int = DEFAULT_RETAINED_COMMANDS,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
    ) -> None:
        self.applied_index = 0
        self.kv = KVStore()
        self.leases = LeaseTable()
        self.watch = WatchHistory(history_events)
        self.oplog = OpLog(retained_commands)
        self.sessions = SessionTable(max_sessions)
        self._handlers: dict[type, Callable[[Any, Entry], Applied]] = {
            Put: self._put,
            Delete: self._delete,
            Txn: self._txn,
            LeaseGrant: self._lease_grant,
            LeaseRevoke: self._lease_revoke,
            LogAppend: self._log_append,
        }

    def apply(self, entry: Entry) -> Applied:
        """Apply one committed entry; raises ValueError only if ``entry.index`` goes backwards."""
        if entry.index <= self.applied_index:
            raise ValueError(
                f"entry {entry.index} is not after the applied index {self.applied_index}"
            )
        self.applied_index = entry.index
        if entry.type != EntryType.NORMAL or not entry.data:
            return _NOTHING
        client = entry.client
        if client:
            hit = self.sessions.lookup(client, entry.seq)
            if hit is not None:
                if hit.stale:
                    message = f"request {client!r} seq {entry.seq} was superseded by a later one"
                    return Applied(_error(ErrorCode.STALE_REQUEST, message, entry.index))
                return Applied(hit.result)
        try:
            cmd: Command = decode(entry.data)
        except InvalidCommandError as exc:
            applied = Applied(_error(ErrorCode.INVALID_COMMAND, str(exc), entry.index))
        else:
            applied = self._handlers[type(cmd)](cmd, entry)
            if applied.events:
                self.watch.extend(applied.events)
        if client:
            self.sessions.record(client, entry.seq, applied.result, entry.index)
        return applied

    # --- snapshots ------------------------------------------------------------

    def snapshot_parts(self) -> list[Any]:
        """The replicated state, cheap to take on the event loop and safe to pack on
        another thread (``pack_state``) while apply goes on: a copy of the key-value
        store (``KVCapture``) and fresh lists of immutable values for the rest."""
        return [
            SNAPSHOT_FORMAT,
            self.applied_index,
            self.kv.capture(),
            self.leases.to_data(),
            self.oplog.to_data(),
            self.sessions.to_data(),
        ]

    def snapshot(self) -> bytes:
        """Everything replicated, as one versioned msgpack blob."""
        blob: bytes = msgpack.packb(_flattened(self.snapshot_parts()), use_bin_type=True)
        return blob

    def restore(self, blob: bytes) -> None:
        """Replace the whole state with a ``snapshot()``; the watch history restarts empty."""
        with _gc_paused():
            self._restore(msgpack.unpackb(blob, raw=False, use_list=True))

    def _restore(self, data: Any) -> None:
        if not isinstance(data, list) or not data or data[0] != SNAPSHOT_FORMAT:
            found = data[0] if isinstance(data, list) and data else data
            raise ValueError(
                f"unsupported snapshot format {found!r}: this sidecar reads format "
                f"{SNAPSHOT_FORMAT}; restore with a matching raftpod version"
            )
        _, applied_index, kv, leases, oplog, sessions = data
        self.kv.restore(kv)
        self.leases.restore(leases, self.kv.leased())
        self.oplog.restore(oplog)
        self.sessions = SessionTable.from_data(sessions, self.sessions.max_sessions)
        self.watch.reset(self.kv.revision + 1)
        self.applied_index = applied_index

    # --- commands ---------------------------------------------------------------

    def _compare_failed(self, key: str, mod_revision: int, wanted: int, index: int) -> Applied:
        message = f"key {key!r} has mod_revision {mod_revision}, not {wanted}"
        return Applied(
            _error(
                ErrorCode.COMPARE_FAILED,
                message,
                index,
                revision=self.kv.revision,
                mod_revision=mod_revision,
            )
        )

    def _lease_not_found(self, lease_id: int, index: int) -> Applied:
        message = f"lease {lease_id} does not exist (expired or revoked); grant a new one"
        return Applied(_error(ErrorCode.LEASE_NOT_FOUND, message, index, revision=self.kv.revision))

    def _write_put(self, key: str, value: bytes, lease: int, revision: int) -> Event:
        old = self.kv.get(key)
        if old is not None and old.lease and old.lease != lease:
            self.leases.detach(old.lease, key)
        if lease:
            self.leases.attach(lease, key)
        return self.kv.put(key, value, lease, revision)

    def _write_delete(self, key: str, revision: int) -> Event | None:
        old = self.kv.get(key)
        if old is not None and old.lease:
            self.leases.detach(old.lease, key)
        return self.kv.delete(key, revision)

    def _put(self, cmd: Put, entry: Entry) -> Applied:
        kv = self.kv
        if cmd.prev_revision is not None:
            old = kv.get(cmd.key)
            mod = 0 if old is None else old.mod_revision
            if mod != cmd.prev_revision:
                return self._compare_failed(cmd.key, mod, cmd.prev_revision, entry.index)
        if cmd.lease and cmd.lease not in self.leases:
            return self._lease_not_found(cmd.lease, entry.index)
        revision = kv.revision + 1
        event = self._write_put(cmd.key, cmd.value, cmd.lease, revision)
        kv.revision = revision
        return Applied({"revision": revision, "index": entry.index}, (event,))

    def _delete(self, cmd: Delete, entry: Entry) -> Applied:
        kv = self.kv
        if cmd.prev_revision is not None:
            old = kv.get(cmd.key)
            mod = 0 if old is None else old.mod_revision
            if mod != cmd.prev_revision:
                return self._compare_failed(cmd.key, mod, cmd.prev_revision, entry.index)
        event = self._write_delete(cmd.key, kv.revision + 1)
        if event is None:
            return Applied({"revision": kv.revision, "index": entry.index, "deleted": 0})
        kv.revision = event.revision
        return Applied({"revision": kv.revision, "index": entry.index, "deleted": 1}, (event,))

    def _holds(self, compare: Compare) -> bool:
        current = self.kv.get(compare.key)
        if current is None:
            if compare.target == CompareTarget.VALUE:
                return False  # etcd: a value compare on an absent key is false
            actual: Any = 0
        else:
            actual = current[_COMPARE_FIELD[compare.target]]
        return _COMPARE_OP[compare.op](actual, compare.value)

    def _txn(self, cmd: Txn, entry: Entry) -> Applied:
        kv = self.kv
        succeeded = all(self._holds(c) for c in cmd.compare)
        ops = cmd.success if succeeded else cmd.failure
        for op in ops:
            if isinstance(op, Put) and op.lease and op.lease not in self.leases:
                return self._lease_not_found(op.lease, entry.index)
        revision = kv.revision + 1
        events: list[Event] = []
        results: list[Result] = []
        for op in ops:
            if isinstance(op, Put):
                events.append(self._write_put(op.key, op.value, op.lease, revision))
                results.append({"revision": revision})
            elif isinstance(op, Delete):
                event = self._write_delete(op.key, revision)
                if event is not None:
                    events.append(event)
                results.append({"deleted": 0 if event is None else 1})
            elif isinstance(op, Get):
                found = kv.get(op.key)
                results.append({"kv": None if found is None else _item(op.key, found)})
            else:
                keys, values, more = kv.range(op.prefix, op.limit)
                items = list(map(_item, keys, values))
                results.append({"items": items, "more": more})
        if events:
            kv.revision = revision
        result = {
            "succeeded": succeeded,
            "revision": kv.revision,
            "index": entry.index,
            "results": results,
        }
        return Applied(result, tuple(events))

    def _lease_grant(self, cmd: LeaseGrant, entry: Entry) -> Applied:
        self.leases.grant(entry.index, cmd.ttl)
        index = entry.index
        return Applied({"id": index, "ttl": cmd.ttl, "revision": self.kv.revision, "index": index})

    def _lease_revoke(self, cmd: LeaseRevoke, entry: Entry) -> Applied:
        if cmd.lease_id not in self.leases:
            return self._lease_not_found(cmd.lease_id, entry.index)
        kv = self.kv
        revision = kv.revision + 1
        events = tuple(
            event
            for key in self.leases.revoke(cmd.lease_id)
            if (event := kv.delete(key, revision)) is not None
        )
        if events:
            kv.revision = revision
        result = {"revision": kv.revision, "index": entry.index, "deleted": len(events)}
        return Applied(result, events)

    def _log_append(self, cmd: LogAppend, entry: Entry) -> Applied:
        record = LogRecord(entry.index, entry.term, cmd.data)
        self.oplog.append(record)
        return Applied({"index": entry.index, "term": entry.term}, record=record)
