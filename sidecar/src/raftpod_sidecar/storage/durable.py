"""``DurableStorage``: the core's read protocol from memory, every write fsynced first.

Reads are served by an in-memory log (the uncompacted log only; compaction
keeps it bounded). Writes go through one writer thread that coalesces every
request queued while the previous fsync ran into one record and one fsync
(group commit), then applies them to memory on the event loop in submission
order and only then resolves the callers' futures: nothing is acknowledged or
visible before it is on disk.

``persist(..., inline=True)`` made while no write is queued is instead done
at once on the caller's thread (blocking it for the fsync). That suits a caller
that awaits each write before making the next and has nothing to do meanwhile,
as the node's Ready loop on a follower (it batches proposals itself): handing a
write to the thread and back costs two wake-ups, which on a busy machine took
longer than the fsync. Installed snapshots always go through the thread (their
file may be large).

One exception, as etcd's raft (``MustSync``): a hard state that only moves the
commit index needs no fsync of its own (after a crash the leader tells the
commit index again), so it is not written at once but with the next write (or
at ``close``); until then the stored commit index may trail.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from ..raft.messages import ConfState, Entry, HardState, Snapshot, SnapshotMeta
from ..raft.storage import MemoryStorage, UnavailableError
from . import snapshots
from .errors import SnapshotCorruptError, StorageClosedError, WalCorruptError
from .wal import WalWriter, read_segments
from .walops import Op, decode_group, encode_group

DEFAULT_SEGMENT_BYTES = 64 << 20
DEFAULT_KEEP_SNAPSHOTS = 2
WAL_DIR, SNAP_DIR = "wal", "snap"
"""Under a data dir: a node that ever started has ``WAL_DIR``."""


class _Log(MemoryStorage):
    """``MemoryStorage`` plus the resets that recovery and compaction need."""

    def reset(self, index: int, term: int) -> None:
        self._entries = [Entry(term=term, index=index)]

    def compact_to(self, index: int, term: int) -> None:
        """Drop entries up to ``index``; past the end, restart the log after it."""
        offset = self._entries[0].index
        if index < offset:
            return
        if index > self.last_index():
            self.reset(index, term)
            return
        keep = self._entries[index - offset :]
        self._entries = [Entry(term=term, index=index), *keep[1:]]

    def set_snapshot(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot

    def base(self) -> tuple[int, int]:
        """Index and term of the entry just before the first stored one."""
        return self._entries[0].index, self._entries[0].term


_UNKNOWN_TERM = -1


@dataclass
class _Request:
    """One caller's durable write: WAL ops, an installed snapshot's file, a memory update."""

    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[None] | None  # None: written on the caller's thread
    ops: list[tuple[Any, ...]]
    apply: Callable[[], None]
    snapshot: Snapshot | None = None


@dataclass
class _WriterState:
    """What the writer thread knows of the durable state, to start new segments."""

    hard_state: HardState
    base: tuple[int, int]
    # seq -> highest index of an entry in it that may still be needed
    segment_max: dict[int, int] = field(default_factory=dict)


_STOP = object()


class DurableStorage:
    """Crash-safe ``raft.storage.Storage``; open with ``DurableStorage.open(data_dir)``."""

    def __init__(
        self,
        data_dir: Path,
        log: _Log,
        state: _WriterState,
        last_seq: int,
        *,
        segment_bytes: int,
        keep_snapshots: int,
        on_fsync: Callable[[float], None] | None,
    ) -> None:
        self.data_dir = data_dir
        self._log = log
        self._snap_dir = data_dir / SNAP_DIR
        self._keep_snapshots = keep_snapshots
        self._state = state
        self._wal = WalWriter(data_dir / WAL_DIR, last_seq, segment_bytes, on_fsync)
        if self._wal.size == 0:
            # every segment starts with the state it continues from (see _recover)
            self._wal.append(self._base_record())
        self._queue: queue.SimpleQueue[_Request | object] = queue.SimpleQueue()
        self._failure: BaseException | None = None
        self._closed = False
        self._io_lock = threading.Lock()  # one writer of the WAL at a time
        self._queued = 0  # requests handed to the thread and not yet completed
        self._queued_lock = threading.Lock()
        # what memory will hold once every queued request is applied (to validate early)
        self._pending_base = log.base()[0]
        self._pending_last = log.last_index()
        self._pending_snap = log.snapshot().meta.index
        self._pending_hard = log.hard_state
        self._unwritten_hard: HardState | None = None  # commit-only, rides with the next write
        self._thread = threading.Thread(target=self._run, name="raftpod-wal", daemon=True)
        self._thread.start()

    # -- opening and recovery ----------------------------------------------
    @classmethod
    def open(
        cls,
        data_dir: str | Path,
        *,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        keep_snapshots: int = DEFAULT_KEEP_SNAPSHOTS,
        on_fsync: Callable[[float], None] | None = None,
    ) -> DurableStorage:
        """Recover from ``data_dir`` (created if missing) and start the writer thread.

        ``on_fsync(seconds)`` is called after every fsync (from the writer thread, or
        the caller's for an inline write, see the module docstring).
        Raises ``WalCorruptError``/``SnapshotCorruptError`` rather than serve damage.
        """
        root = Path(data_dir)
        wal_dir = root / WAL_DIR
        snap_dir = root / SNAP_DIR
        wal_dir.mkdir(parents=True, exist_ok=True)
        snap_dir.mkdir(parents=True, exist_ok=True)
        snapshots.remove_temp_files(snap_dir)
        log, state, last_seq = _recover(wal_dir, snap_dir)
        return cls(
            root,
            log,
            state,
            last_seq,
            segment_bytes=segment_bytes,
            keep_snapshots=keep_snapshots,
            on_fsync=on_fsync,
        )

    # -- the read protocol (raft.storage.Storage) ---------------------------
    def initial_state(self) -> tuple[HardState, ConfState]:
        return self._log.initial_state()

    def entries(self, lo: int, hi: int, max_bytes: int) -> list[Entry]:
        return self._log.entries(lo, hi, max_bytes)

    def term(self, index: int) -> int:
        return self._log.term(index)

    def first_index(self) -> int:
        return self._log.first_index()

    def last_index(self) -> int:
        return self._log.last_index()

    def snapshot(self) -> Snapshot:
        return self._log.snapshot()

    @property
    def hard_state(self) -> HardState:
        return self._log.hard_state

    # -- durable writes -----------------------------------------------------
    async def persist(
        self,
        hard_state: HardState | None = None,
        entries: Sequence[Entry] = (),
        snapshot: Snapshot | None = None,
        *,
        inline: bool = False,
    ) -> None:
        """Make a Ready's durable part durable, then visible; returns after fsync.

        Order as in the Ready: the snapshot (installed from the leader), then the
        entries (replacing stored ones from ``entries[0].index`` on), then the
        hard state. Concurrent calls share one fsync. A hard state alone whose
        term and vote are unchanged (only the commit index moved) is kept for the
        next write and returns at once; memory holds it at once unless writes are
        queued, else with that next write. ``inline``: see the module docstring.
        """
        ops: list[tuple[Any, ...]] = []
        snap_index, base, last = self._pending_snap, self._pending_base, self._pending_last
        if snapshot is not None and snapshot.meta.index > snap_index:
            meta = snapshot.meta
            ops.append((Op.RESET, meta.index, meta.term))
            snap_index = base = last = meta.index
        else:
            snapshot = None
        entries = tuple(entries)
        if entries and entries[-1].index > base:
            if entries[0].index > last + 1:
                raise UnavailableError(f"gap: append at {entries[0].index}, last {last}")
            ops.append((Op.ENTRIES, entries))
            last = entries[-1].index
        self._pending_snap, self._pending_base, self._pending_last = snap_index, base, last
        log = self._log
        if hard_state is not None:
            previous, self._pending_hard = self._pending_hard, hard_state
            if not ops and (hard_state.term, hard_state.vote) == (previous.term, previous.vote):
                self._unwritten_hard = hard_state
                if self._queued == 0:  # else a queued write's older hard state would win
                    log.set_hard_state(hard_state)
                return
        elif ops:
            hard_state = self._unwritten_hard
        if hard_state is not None:
            ops.append((Op.HARD_STATE, hard_state))
        if not ops:
            return
        self._unwritten_hard = None

        def apply() -> None:
            if snapshot is not None:
                log.apply_snapshot(snapshot)
            if entries:
                log.append(entries)
            if hard_state is not None:
                log.set_hard_state(hard_state)

        await self._submit(ops, apply, snapshot=snapshot, inline=inline)

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        """Install a snapshot received from the leader (same as ``persist(snapshot=...)``)."""
        await self.persist(snapshot=snapshot)

    async def install_snapshot_file(self, meta: SnapshotMeta, source: Path) -> Snapshot:
        """Install a received snapshot whose data was streamed to ``source``; returns it."""
        data = await asyncio.to_thread(source.read_bytes)
        await self.persist(snapshot=Snapshot(meta, data))
        return self._log.snapshot()

    async def create_snapshot(self, index: int, conf: ConfState, data: bytes) -> Snapshot:
        """Durably record a snapshot the caller took at applied ``index``; does not compact."""
        current = self._log.snapshot()
        if index <= current.meta.index:
            return current
        if index > self._log.last_index():
            raise UnavailableError(index)
        self._check_writable()
        snapshot = Snapshot(SnapshotMeta(index, self._log.term(index), conf), data)
        self._pending_snap = max(self._pending_snap, index)
        # written beside the WAL thread, so a large snapshot never stalls commits
        await asyncio.to_thread(self._write_snapshot_file, snapshot)
        if index > self._log.snapshot().meta.index:
            self._log.set_snapshot(snapshot)
        return snapshot

    async def compact(self, index: int) -> None:
        """Durably drop entries up to ``index`` (at most the snapshot's index).

        Segments holding only entries at or before it are deleted.
        """
        offset = self._log.base()[0]
        if index <= offset:
            return
        if index > self._log.last_index():
            raise UnavailableError(index)
        if index > self._log.snapshot().meta.index:
            raise ValueError(
                f"compact({index}) is past the snapshot at {self._log.snapshot().meta.index}"
            )
        term = self._log.term(index)
        self._pending_base = max(self._pending_base, index)
        log = self._log
        await self._submit([(Op.COMPACT, index, term)], lambda: log.compact_to(index, term))

    def snapshot_reader(self) -> tuple[SnapshotMeta, int, BinaryIO] | None:
        """The newest snapshot file opened at its data, for chunked sending; caller closes."""
        files = snapshots.list_snapshots(self._snap_dir)
        if not files:
            return None
        return snapshots.open_snapshot_data(files[-1])

    async def close(self) -> None:
        """Finish queued writes (and an unwritten commit index), stop the writer thread."""
        if self._closed:
            return
        hard_state, self._unwritten_hard = self._unwritten_hard, None
        if hard_state is not None and self._failure is None:
            log = self._log
            ops: list[tuple[Any, ...]] = [(Op.HARD_STATE, hard_state)]
            await self._submit(ops, lambda: log.set_hard_state(hard_state))
        self._closed = True
        self._queue.put(_STOP)
        await asyncio.to_thread(self._thread.join)

    # -- the writer thread ----------------------------------------------------
    async def _submit(
        self,
        ops: list[tuple[Any, ...]],
        apply: Callable[[], None],
        *,
        snapshot: Snapshot | None = None,
        inline: bool = False,
    ) -> None:
        """Queue a write for the thread and wait for it; or, ``inline`` and with nothing
        queued, write it now on this thread."""
        self._check_writable()
        loop = asyncio.get_running_loop()
        with self._queued_lock:
            inline = inline and snapshot is None and self._queued == 0
            if not inline:
                self._queued += 1
        if inline:
            request = _Request(loop, None, ops, apply)
            error = self._write_locked([request])
            if error is not None:
                raise StorageClosedError(f"durable write failed: {error!r}") from error
            apply()
            return
        future = loop.create_future()
        self._queue.put(_Request(loop, future, ops, apply, snapshot))
        # if the caller is cancelled the write still completes and is applied to memory
        await future

    def _check_writable(self) -> None:
        if self._closed:
            raise StorageClosedError("storage is closed")
        if self._failure is not None:
            raise StorageClosedError("an earlier write failed") from self._failure

    def _write_snapshot_file(self, snapshot: Snapshot) -> None:
        snapshots.write_snapshot(self._snap_dir, snapshot)
        snapshots.prune_snapshots(self._snap_dir, self._keep_snapshots)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            batch: list[_Request] = []
            stop = False
            while True:
                if item is _STOP:
                    stop = True
                else:
                    assert isinstance(item, _Request)
                    batch.append(item)
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if batch:
                self._write_batch(batch)
            if stop:
                self._wal.close()
                return

    def _write_locked(self, batch: list[_Request]) -> BaseException | None:
        """Write ``batch`` durably; the error that makes this storage unusable, if any."""
        with self._io_lock:
            error: BaseException | None = self._failure
            if error is None:
                try:
                    self._write_durably(batch)
                except BaseException as exc:  # a failed fsync leaves the file state unknown
                    self._failure = error = exc
            return error

    def _write_batch(self, batch: list[_Request]) -> None:
        error = self._write_locked(batch)
        by_loop: dict[asyncio.AbstractEventLoop, list[_Request]] = {}
        for request in batch:
            by_loop.setdefault(request.loop, []).append(request)
        for loop, requests in by_loop.items():
            # RuntimeError: the caller's loop is closed, nobody is waiting
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._complete, requests, error)

    def _complete(self, requests: list[_Request], error: BaseException | None) -> None:
        """On the loop: apply durable requests to memory in order, then wake their callers."""
        for request in requests:
            if error is None:
                request.apply()
            future = request.future
            if future is not None and not future.done():
                if error is None:
                    future.set_result(None)
                else:
                    future.set_exception(StorageClosedError(f"durable write failed: {error!r}"))
        with self._queued_lock:
            self._queued -= len(requests)

    def _write_durably(self, batch: list[_Request]) -> None:
        state = self._state
        ops: list[tuple[Any, ...]] = []
        base_before = state.base
        for request in batch:
            if request.snapshot is not None:  # an installed snapshot precedes its RESET
                self._write_snapshot_file(request.snapshot)
            ops.extend(request.ops)
        if ops:
            self._wal.append(encode_group(ops))
            for op in ops:
                _track(state, self._wal.seq, op)
        if self._wal.needs_rotation():
            self._wal.rotate(self._base_record())
            state.segment_max[self._wal.seq] = 0
        if state.base != base_before:
            self._remove_segments_before(state.base[0])

    def _base_record(self) -> bytes:
        """The first record of a segment: hard state and log start, so the
        segments before it can be removed without losing them."""
        return encode_group([(Op.BASE, self._state.hard_state, *self._state.base)])

    def _remove_segments_before(self, index: int) -> None:
        """Delete the oldest segments whose entries are all at or before ``index``."""
        removable = []
        for seq in sorted(self._state.segment_max):
            if seq >= self._wal.seq or self._state.segment_max[seq] > index:
                break
            removable.append(seq)
        self._wal.remove_segments(removable)
        for seq in removable:
            del self._state.segment_max[seq]


def _track(state: _WriterState, seq: int, op: tuple[Any, ...]) -> None:
    """Follow the durable state the writer needs for segment headers and removal."""
    state.segment_max.setdefault(seq, 0)
    kind = op[0]
    if kind is Op.ENTRIES and op[1]:
        state.segment_max[seq] = max(state.segment_max[seq], op[1][-1].index)
    elif kind is Op.HARD_STATE:
        state.hard_state = op[1]
    elif kind is Op.COMPACT:
        state.base = (op[1], op[2])
    elif kind is Op.RESET:
        state.base = (op[1], op[2])
        for older in state.segment_max:  # an installed snapshot replaces the whole log
            if older < seq:
                state.segment_max[older] = 0


def _recover(wal_dir: Path, snap_dir: Path) -> tuple[_Log, _WriterState, int]:
    """Rebuild memory from the newest snapshot file and every WAL segment."""
    log = _Log()
    state = _WriterState(HardState(), (0, 0))
    segments = read_segments(wal_dir)
    seen_entries = False
    base_unknown = False
    for position, segment in enumerate(segments):
        state.segment_max[segment.seq] = 0
        for payload in segment.payloads:
            for op, args in decode_group(payload):
                if op is Op.BASE:
                    if position == 0 and not seen_entries:
                        log.set_hard_state(args[0])
                        log.reset(args[1], args[2])
                elif op is Op.ENTRIES:
                    entries = args[0]
                    if entries[0].index > log.last_index() + 1:
                        if seen_entries:
                            raise WalCorruptError(
                                segment.path, 0, f"entries jump to {entries[0].index}"
                            )
                        # older segments were removed after a compaction recorded later
                        log.reset(entries[0].index - 1, _UNKNOWN_TERM)
                        base_unknown = True
                    seen_entries = True
                    log.append(entries)
                    state.segment_max[segment.seq] = max(
                        state.segment_max[segment.seq], entries[-1].index
                    )
                elif op is Op.HARD_STATE:
                    log.set_hard_state(args[0])
                else:
                    index, term = args
                    if op is Op.RESET:
                        log.reset(index, term)
                    else:
                        log.compact_to(index, term)
                    if log.base()[1] != _UNKNOWN_TERM:
                        base_unknown = False
    if base_unknown:
        raise WalCorruptError(segments[0].path, 0, "log start unknown: a segment is missing")
    _attach_snapshot(log, snap_dir)
    state.hard_state = log.hard_state
    state.base = log.base()
    if segments:
        return log, state, segments[-1].seq
    # a fresh directory: the first segment starts empty
    state.segment_max[1] = 0
    return log, state, 1


def _attach_snapshot(log: _Log, snap_dir: Path) -> None:
    files = snapshots.list_snapshots(snap_dir)
    base_index = log.base()[0]
    if not files:
        if base_index != 0:
            raise SnapshotCorruptError(snap_dir, f"no snapshot, but the log starts at {base_index}")
        return
    snapshot = snapshots.read_snapshot(files[-1])
    meta = snapshot.meta
    if meta.index < base_index:
        raise SnapshotCorruptError(
            files[-1], f"newest snapshot at {meta.index} is older than the log start {base_index}"
        )
    if meta.index > log.last_index() or log.term(meta.index) != meta.term:
        # crashed after writing an installed snapshot, before its WAL record
        log.reset(meta.index, meta.term)
    log.set_snapshot(snapshot)
