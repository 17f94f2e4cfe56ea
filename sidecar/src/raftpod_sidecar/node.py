"""The asyncio driver around the sans-I/O core: one task owns ``RawNode``.

Everything that touches the core (ticks, peer messages, proposals, read-index
requests, membership changes) is queued and run by the single Ready-loop task,
between Ready cycles, so the core never sees a call between ``ready()`` and
``advance()``. Each cycle does what the Ready contract says, in order: persist
(fsync on this thread, or awaiting the storage's fsync thread), send, apply,
answer read states, advance; except that a leader sends new entries first, so
its followers write to disk while it does, and a commit after applying it, so
its clients are answered first. Proposals wait while a persist is in flight,
so they batch into the next Ready: that is the group commit.

A proposal is a future in a dict keyed by log index and resolved when that
index is applied with the term it was proposed in; an index that comes back
with another term means the entry was overwritten after a leader change, and
the caller learns it was dropped. Every wait is bounded by a deadline.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from . import envelope
from .config import TICK_MS, NodeConfig
from .forwarded_writes import RESEND_SECONDS, ForwardedWrites, SlotsExhaustedError
from .logs import event
from .metrics import ROLE_NAMES, NodeMetrics
from .raft.confchange import apply_change, decode_conf_change
from .raft.errors import NotLeaderError, RaftUsageError
from .raft.messages import (
    ConfChange,
    ConfState,
    Entry,
    EntryType,
    Message,
    MessageType,
    Ready,
    Role,
    Snapshot,
)
from .raft.node import RawNode, Status
from .read_batches import ReadBatches
from .snapshotting import Snapshotter
from .state.machine import StateMachine
from .storage import DurableStorage
from .transport import PeerTransport
from .transport.handshake import FORWARDED_PROPOSALS_VERSION

T = TypeVar("T")

MAX_TICKS_PER_CYCLE = 5
"""Ticks missed while the loop was busy are replayed at most this many at once."""

SNAPSHOT_KEEP_ENTRIES = 1000
"""Entries kept behind a snapshot (at most half of ``--snapshot-entries``) so briefly
lagging followers need no InstallSnapshot."""


class NodeError(Exception):
    """A request the node could not serve; ``code``/``status`` map onto the HTTP error."""

    code = "internal"
    status = 500


class NoLeaderError(NodeError):
    code = "no_leader"
    status = 503


class NoQuorumError(NodeError):
    code = "no_quorum"
    status = 503


class ProposalDroppedError(NodeError):
    """The entry was overwritten by a new leader: it was not applied, retrying is safe."""

    code = "no_leader"
    status = 503


class OverloadedError(NodeError):
    """Too many forwarded writes in flight on this node; nothing was sent, retry."""

    code = "overloaded"
    status = 503


class UnknownOutcomeError(NodeError):
    """The deadline passed after proposing: the write may or may not be applied."""

    code = "timeout"
    status = 504


@dataclass(frozen=True, slots=True)
class Committed:
    """A proposal's outcome: where it landed in the log and what apply returned."""

    index: int
    term: int
    result: Any


@dataclass
class _Pending:
    term: int
    future: asyncio.Future[Any]


class RaftNode:
    """Drives one ``RawNode``; the HTTP layers call its async methods."""

    def __init__(
        self,
        *,
        config: NodeConfig,
        raw: RawNode,
        storage: DurableStorage,
        machine: StateMachine,
        metrics: NodeMetrics,
        logger: logging.Logger,
        conf: ConfState,
        applied: int,
        directory: dict[str, str],
    ) -> None:
        self.config = config
        self.id = config.id
        self.raw = raw
        self.storage = storage
        self.machine = machine
        self.metrics = metrics
        self.log = logger
        self.transport: PeerTransport | None = None
        self.conf = conf
        self.applied = applied
        self.commit = applied
        status = raw.status()
        self.term = status.term
        self.leader = status.leader
        self.role = status.role
        self._durable_vote = (status.term, status.vote)
        self.directory = dict(directory)
        self.last_snapshot_index = applied
        self._inbox: list[Message] = []
        self._ops: list[tuple[Callable[[], Any], asyncio.Future[Any]]] = []
        self._ticks = 0
        self._wake = asyncio.Event()
        self._changed = asyncio.Event()  # set (and replaced) on every apply and leader change
        self._pending: dict[int, _Pending] = {}
        self.reads = ReadBatches(raw.read_index, self._submit)
        self._apply_waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._waiter_ids = itertools.count()
        self._snapshot_waiters: list[asyncio.Future[Snapshot]] = []
        self.snapshots = Snapshotter(
            storage,
            min(SNAPSHOT_KEEP_ENTRIES, config.snapshot_entries // 2),
            self._snapshot_taken,
            self._wake.set,
        )
        self._announced_term = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self.fatal: BaseException | None = None
        self.forwarded = ForwardedWrites(self.id)

    # -- lifecycle ---------------------------------------------------------
    def start(self, transport: PeerTransport) -> None:
        self.transport = transport
        self.update_peers(self.raw.status().conf)
        self.metrics.set_election_timeout(*self.config.election_timeout_ms)
        self.metrics.applied_index.set(self.applied)
        self.metrics.set_role(self.role)
        self._tasks = [
            asyncio.create_task(self._ready_loop(), name="raft-ready"),
            asyncio.create_task(self._tick_loop(), name="raft-tick"),
        ]

    async def stop(self) -> None:
        self._closing = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.snapshots.close()
        self.reads.close()
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.set_exception(NoLeaderError("node is shutting down"))

    async def wait_fatal(self) -> None:
        """Returns when the Ready loop died (disk error): the process should exit."""
        await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)

    def update_peers(self, conf: ConfState) -> None:
        """Dial every member: at its ``--peers`` address if given, else the configured one."""
        if self.transport is None:
            return
        flagged = self.config.peers
        self.transport.update_peers(
            {m.id: flagged.get(m.id, m.address) for m in conf.members if m.address}
        )

    # -- inputs from the transport ------------------------------------------
    def deliver(self, messages: list[Message]) -> None:
        """Peer messages arrived; they are stepped by the Ready loop."""
        self._inbox.extend(messages)
        self._wake.set()

    def report_unreachable(self, peer: str) -> None:
        self._submit(lambda: self.raw.report_unreachable(peer))

    # -- the loop ----------------------------------------------------------
    def _submit(self, fn: Callable[[], T]) -> asyncio.Future[T]:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._ops.append((fn, future))
        self._wake.set()
        return future

    async def _tick_loop(self) -> None:
        interval = TICK_MS / 1000
        while True:
            await asyncio.sleep(interval)
            self._ticks += 1
            self._wake.set()

    def _drain_inputs(self) -> None:
        ticks, self._ticks = min(self._ticks, MAX_TICKS_PER_CYCLE), 0
        for _ in range(ticks):
            self.raw.tick()
        inbox, self._inbox = self._inbox, []
        for message in inbox:
            self.raw.step(message)
        ops, self._ops = self._ops, []
        for fn, future in ops:
            try:
                result = fn()
            except Exception as exc:  # the caller's request failed, not the loop
                if not future.done():
                    future.set_exception(exc)
            else:
                if not future.done():
                    future.set_result(result)
        if self.forwarded.outstanding:
            self._resend_outstanding()

    def _resend_outstanding(self) -> None:
        """Forwarded writes go again if handed on before the last leader change (or never),
        or ``RESEND_SECONDS`` ago without an answer."""
        fw = self.forwarded
        now = time.monotonic()
        if fw.leader_changed_at <= fw.last_resend and now - fw.last_resend < RESEND_SECONDS / 4:
            return
        fw.last_resend = now
        due = max(fw.leader_changed_at, now - RESEND_SECONDS)
        for (client, seq), item in list(fw.outstanding.items()):
            if fw.sent.get((client, seq), 0.0) < due:
                self._hand_to_leader(client, seq, item.data)

    def _hand_to_leader(self, client: str, seq: int, data: bytes) -> None:
        """Propose a forwarded write here if this node leads, else send it to the leader."""
        try:
            if self.role == Role.LEADER:
                self.raw.propose(data, client, seq)
            else:
                self.raw.forward(data, client, seq)
        except RaftUsageError:
            return  # no leader, or a transfer under way: re-sent when the leader changes
        self.forwarded.sent[(client, seq)] = time.monotonic()

    async def _ready_loop(self) -> None:
        try:
            while not self._closing:
                await self._wake.wait()
                self._wake.clear()
                self._drain_inputs()
                while self.raw.has_ready():
                    rd = self.raw.ready()
                    await self._handle_ready(rd)
                    self.raw.advance(rd)
                    self._drain_inputs()
                    self._announce_admin_url()
                self._maybe_snapshot()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self.fatal = exc
            self.log.exception("raft loop failed; the node must restart")
            raise

    async def _handle_ready(self, rd: Ready) -> None:
        if rd.hard_state is not None:
            if rd.hard_state.term != self.term:
                event(self.log, "term changed", term=rd.hard_state.term, previous=self.term)
                self.term = rd.hard_state.term
                self.metrics.current_term.set(self.term)
            self.commit = rd.hard_state.commit
            self.metrics.commit_index.set(self.commit)
        if rd.soft_state is not None:
            self._on_soft_state(rd.soft_state.leader, rd.soft_state.role)
        self._fail_overwritten(rd.entries)
        if rd.snapshot is not None or any(e.type == EntryType.CONF_CHANGE for e in rd.entries):
            self.update_peers(self.raw.status().conf)
        leader_order = self._may_send_before_persist(rd)
        overlap = leader_order and bool(rd.entries) and bool(rd.messages)
        if overlap:
            # followers write to disk while this node does (its fsync goes to the WAL
            # thread, so this loop reads their answers meanwhile)
            self._send(rd.messages)
        if rd.hard_state is not None or rd.entries or rd.snapshot is not None:
            # with nothing to overlap, fsync on this thread: a hand-off costs two wake-ups
            await self.storage.persist(rd.hard_state, rd.entries, rd.snapshot, inline=not overlap)
            self.metrics.last_log_index.set(self.storage.last_index())
            if rd.hard_state is not None:
                self._durable_vote = (rd.hard_state.term, rd.hard_state.vote)
        if not leader_order:
            self._send(rd.messages)
        if rd.snapshot is not None and rd.snapshot.meta.index > self.applied:
            self._install_snapshot(rd.snapshot)
        if rd.committed_entries:
            started = time.perf_counter()
            for entry in rd.committed_entries:
                self._apply(entry)
            self.metrics.apply_seconds.observe(time.perf_counter() - started)
            self.metrics.applied_index.set(self.applied)
        for read in rd.read_states:
            self.reads.answered(read.context, read.index)
        self._release_apply_waiters()
        if leader_order and not rd.entries:
            # nothing to overlap with: the writers' handlers run before the commit goes out
            self._send(rd.messages)

    def _may_send_before_persist(self, rd: Ready) -> bool:
        """A leader's messages need not wait for its own disk (thesis §10.2.1).

        They carry entries and commit indexes, not acknowledgements, and no commit can
        count on its unpersisted entries: followers' answers are stepped only after
        ``advance``, which follows the persist. Anything sent with a new term or vote,
        or by a non-leader (acks, votes), waits for the disk. Nor need they wait for
        the apply, so a leader sends them whenever that serves latency best.
        """
        if self.role != Role.LEADER or rd.snapshot is not None:
            return False
        hard = rd.hard_state
        return hard is None or (hard.term, hard.vote) == self._durable_vote

    def _send(self, messages: tuple[Message, ...]) -> None:
        if not messages or self.transport is None:
            return
        self.transport.send(messages)
        sent = sum(1 for m in messages if m.type == MessageType.APP)
        if sent:
            self.metrics.append_entries_sent.inc(sent)

    def _on_soft_state(self, leader: str, role: Role) -> None:
        if role != self.role:
            event(self.log, f"became {ROLE_NAMES[role].replace('_', '-')}", term=self.term)
            self.role = role
            self.metrics.set_role(role)
        if leader != self.leader:
            event(self.log, "leader changed", leader=leader or None, previous=self.leader or None)
            if leader:
                self.metrics.leader_changes.inc()
            self.leader = leader
            self.forwarded.leader_changed_at = time.monotonic()
            self.reads.leader_changed()
            self.wake_waiters()

    def _announce_admin_url(self) -> None:
        """A leader records its admin URL in the log so followers can forward to it.

        Proposed once per term (again if refused, e.g. during a transfer) unless the
        replicated directory already holds this URL.
        """
        url = self.config.advertise_admin
        if self.role != Role.LEADER or self._announced_term == self.term:
            return
        if self.directory.get(self.id) == url:
            return
        try:
            self.raw.propose(envelope.directory_record(self.id, url))
        except RaftUsageError:
            return
        self._announced_term = self.term

    def _fail_overwritten(self, entries: tuple[Entry, ...]) -> None:
        for entry in entries:
            pending = self._pending.get(entry.index)
            if pending is not None and pending.term != entry.term:
                del self._pending[entry.index]
                self.metrics.proposal_results["dropped"].inc()
                if not pending.future.done():
                    pending.future.set_exception(
                        ProposalDroppedError("leadership changed before the write committed")
                    )

    def _install_snapshot(self, snapshot: Snapshot) -> None:
        machine_bytes, directory = envelope.unpack_snapshot(snapshot.data)
        if machine_bytes:
            self.machine.restore(machine_bytes)
        self.directory = directory
        self.conf = snapshot.meta.conf
        self.applied = snapshot.meta.index
        self.last_snapshot_index = snapshot.meta.index
        self.metrics.snapshots_installed.inc()
        event(
            self.log,
            "installed snapshot",
            index=snapshot.meta.index,
            term=snapshot.meta.term,
            bytes=len(snapshot.data),
        )
        for index in [i for i in self._pending if i <= snapshot.meta.index]:
            pending = self._pending.pop(index)
            if not pending.future.done():
                pending.future.set_exception(
                    UnknownOutcomeError("a snapshot replaced the log; the outcome is unknown")
                )

    def _apply(self, entry: Entry) -> None:
        result: object = None
        if entry.type == EntryType.CONF_CHANGE:
            change = decode_conf_change(entry.data)
            self.conf = apply_change(self.conf, change)
            result = self.conf
            event(
                self.log,
                "membership changed",
                change=change.type.name.lower(),
                member=change.node_id,
                address=change.address or None,
                index=entry.index,
                voters=",".join(self.conf.voters()),
                learners=",".join(self.conf.learners()),
            )
        elif entry.data:
            tag, payload = envelope.open_entry(entry.data)
            if tag == envelope.Tag.DIRECTORY:
                node_id, url = envelope.read_directory_record(payload)
                self.directory[node_id] = url
            else:
                result = self.machine.apply(entry._replace(data=payload)).result
                if entry.client:
                    self.forwarded.applied(
                        entry.client, entry.seq, Committed(entry.index, entry.term, result)
                    )
        self.applied = entry.index
        pending = self._pending.pop(entry.index, None)
        if pending is None:
            return
        if pending.term == entry.term:
            self.metrics.proposal_results["ok"].inc()
            if not pending.future.done():
                pending.future.set_result(Committed(entry.index, entry.term, result))
        else:
            self.metrics.proposal_results["dropped"].inc()
            if not pending.future.done():
                pending.future.set_exception(
                    ProposalDroppedError("leadership changed before the write committed")
                )

    def _release_apply_waiters(self) -> None:
        waiters = self._apply_waiters
        while waiters and waiters[0][0] <= self.applied:
            _, _, future = heapq.heappop(waiters)
            if not future.done():
                future.set_result(None)
        self.wake_waiters()

    def wake_waiters(self) -> None:
        """Every ``wait_condition`` re-checks now (after an apply, a leader change, or
        when a caller's own condition changed)."""
        self._changed.set()
        self._changed = asyncio.Event()

    def _maybe_snapshot(self) -> None:
        """Start a snapshot on request or every ``--snapshot-entries`` applied entries;
        it is written beside this loop (``snapshotting``), one at a time."""
        snapshots = self.snapshots
        if snapshots.failure is not None:
            raise snapshots.failure  # the disk failed: the node must restart
        due = self.applied - self.last_snapshot_index >= self.config.snapshot_entries
        if snapshots.busy or not (due or self._snapshot_waiters):
            return
        waiters, self._snapshot_waiters = self._snapshot_waiters, []
        current = self.storage.snapshot()
        if self.applied <= current.meta.index:
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(current)
            return
        parts = self.machine.snapshot_parts()
        snapshots.start(self.applied, self.conf, parts, dict(self.directory), waiters)

    async def take_snapshot(self) -> Snapshot:
        """Have the node snapshot now; returns a snapshot taken after this call."""
        future: asyncio.Future[Snapshot] = asyncio.get_running_loop().create_future()
        self._snapshot_waiters.append(future)
        self._wake.set()
        return await future

    def _snapshot_taken(self, snapshot: Snapshot, seconds: float) -> None:
        self.last_snapshot_index = max(self.last_snapshot_index, snapshot.meta.index)
        self.metrics.snapshots.inc()
        self.metrics.snapshot_seconds.observe(seconds)
        self.metrics.snapshot_bytes.set(len(snapshot.data))
        event(
            self.log,
            "snapshot taken",
            index=snapshot.meta.index,
            term=snapshot.meta.term,
            bytes=len(snapshot.data),
            seconds=round(seconds, 4),
        )

    # -- waiting helpers -----------------------------------------------------
    async def wait_leader(self, deadline: float) -> str:
        """The current leader's id, waiting up to ``deadline`` for one to be known."""
        if not await self.wait_condition(lambda: bool(self.leader), deadline):
            raise NoLeaderError("no leader is known; the cluster may have lost quorum")
        return self.leader

    async def wait_applied(self, index: int, deadline: float) -> None:
        if self.applied >= index:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._apply_waiters, (index, next(self._waiter_ids), future))
        try:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                await future
        except TimeoutError:
            raise NoQuorumError(f"this node did not apply index {index} in time") from None

    async def wait_condition(self, check: Callable[[], bool], deadline: float) -> bool:
        """Wait until ``check()`` holds after some apply or leader change, or the deadline."""
        while not check():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            changed = self._changed
            try:
                async with asyncio.timeout(remaining):
                    await changed.wait()
            except TimeoutError:
                return check()
        return True

    async def wait_leader_change(self, leader: str, deadline: float) -> bool:
        """Wait until the known leader is no longer ``leader``; False at the deadline."""
        return await self.wait_condition(lambda: self.leader != leader, deadline)

    def deadline(self) -> float:
        return time.monotonic() + self.config.request_timeout

    # -- client operations -------------------------------------------------------
    def _register(self, index_term: tuple[int, int]) -> asyncio.Future[Any]:
        index, term = index_term
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[index] = _Pending(term, future)
        return future

    async def _propose_with(
        self, propose: Callable[[], tuple[int, int]], deadline: float
    ) -> Committed:
        """Propose on this node (the leader) and wait until the entry is applied here."""
        await self.wait_leader(deadline)
        if self.leader != self.id:
            raise NotLeaderError(self.leader, self.term)
        applied = await self._submit(lambda: self._register(propose()))
        try:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                outcome: Committed = await applied
        except TimeoutError:
            self.metrics.proposal_results["timeout"].inc()
            raise UnknownOutcomeError(
                "the write was proposed but not committed before the deadline; "
                "it may still be applied: read before retrying, or retry with the same "
                "X-Request-Id"
            ) from None
        return outcome

    async def propose(
        self, command: bytes, deadline: float, client: str = "", seq: int = 0
    ) -> Committed:
        """Replicate a state-machine command; returns what the state machine's apply returned.

        Raises ``NotLeaderError`` on a follower (the caller forwards),
        ``NoLeaderError``, ``ProposalDroppedError`` or ``UnknownOutcomeError``.
        """
        data = envelope.machine_command(command)
        try:
            return await self._propose_with(lambda: self.raw.propose(data, client, seq), deadline)
        except RaftUsageError:
            self.metrics.proposal_results["failed"].inc()
            raise

    def can_forward_proposals(self) -> bool:
        """Whether writes can go to the leader inside the peer transport (a version-2 leader)."""
        transport = self.transport
        return (
            self.config.forward_writes == "peer"
            and transport is not None
            and bool(self.leader)
            and self.leader != self.id
            and transport.peer_version(self.leader) >= FORWARDED_PROPOSALS_VERSION
        )

    async def propose_via_leader(
        self, command: bytes, deadline: float, client: str = "", seq: int = 0
    ) -> Committed:
        """A follower's write: sent to the leader as a PROP and answered once applied here.

        Without a client session it takes one of this node's slots, so re-sending it
        (on a leader change, or unanswered) is exactly-once; see ``forwarded_writes``.
        Raises ``UnknownOutcomeError`` at the deadline once sent, ``NoLeaderError``
        if it never could be, ``OverloadedError`` if no slot freed up.
        """
        data = envelope.machine_command(command)
        slot = not client
        if slot:
            try:
                client, seq = await self.forwarded.acquire(deadline)
            except SlotsExhaustedError as exc:
                raise OverloadedError(str(exc)) from None
        future, owner = self.forwarded.add(client, seq, data)
        sent = False
        try:
            if owner:
                self._submit(lambda: self._hand_to_leader(client, seq, data))
            done, _ = await asyncio.wait((future,), timeout=max(0.0, deadline - time.monotonic()))
            if done:
                self.metrics.proposal_results["ok"].inc()
                outcome: Committed = future.result()
                return outcome
        finally:
            if owner:
                sent = self.forwarded.remove(client, seq)
            if slot:
                self.forwarded.release(client, seq)
        self.metrics.proposal_results["timeout"].inc()
        if sent or not owner:
            raise UnknownOutcomeError(
                "the write was forwarded to the leader but not applied before the deadline; "
                "it may still be applied: read before retrying, or retry with the same "
                "X-Request-Id"
            )
        raise NoLeaderError("no leader could be reached before the deadline")

    async def change_membership(self, change: ConfChange, deadline: float) -> ConfState:
        outcome = await self._propose_with(lambda: self.raw.propose_conf_change(change), deadline)
        assert isinstance(outcome.result, ConfState)
        return outcome.result

    async def read_barrier(self, deadline: float, lease: bool = False) -> int:
        """Wait until a linearizable read may be served locally (ReadIndex); returns the index.

        On a follower the core asks the leader for its commit index; either way the
        read waits until this node has applied that far.
        """
        index = await self.read_index(deadline, lease)
        await self.wait_applied(index, deadline)
        return index

    async def read_index(self, deadline: float, lease: bool = False) -> int:
        """The leader's commit index, confirmed current by a quorum (or the leader's lease)."""
        await self.wait_leader(deadline)
        index = await self.reads.wait(lease, deadline)
        if index is None:
            raise NoQuorumError(
                "the leader did not confirm a read index in time; the cluster may lack quorum"
            )
        return index

    async def transfer_leadership(self, to: str, deadline: float) -> str:
        await self._submit(lambda: self.raw.transfer_leadership(to))
        if not await self.wait_condition(lambda: self.leader == to, deadline):
            raise UnknownOutcomeError(f"leadership did not move to {to!r} before the deadline")
        return to

    def status(self) -> Status:
        return self.raw.status()

    def leader_admin_url(self) -> str | None:
        return self.directory.get(self.leader) if self.leader else None
