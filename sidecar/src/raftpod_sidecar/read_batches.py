"""Linearizable reads share ReadIndex requests, with one request in flight per kind.

As in etcd's read loop: reads that arrive while a request is out wait for the
next one, which goes out when the first is answered. Under load one heartbeat
round then serves every read that arrived during the round before, instead of
one round per turn of the Ready loop; an idle node sends a read's request at
once. The next request is sent only after all its reads began, so the index the
leader confirms is current for each of them.

A request unanswered after ``RETRY_SECONDS``, or out when the leader changes
(a new leader never answers an old one's request), is given up and sent again
under a new context (an answer to the old one is then ignored). A batch whose
readers all gave up is not sent again.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable

from .raft.errors import RaftUsageError

RETRY_SECONDS = 0.5  # etcd's readIndexRetryTime


class ReadBatch:
    """Reads that wait for one ReadIndex request."""

    __slots__ = ("context", "future", "readers")

    def __init__(self, context: bytes, future: asyncio.Future[int]) -> None:
        self.context = context  # of the request out for it (a retry changes it)
        self.future = future
        self.readers = 0


class ReadBatches:
    """The open (not yet sent) and in-flight batch of each kind (lease or not).

    ``start(context, lease)`` asks the Raft core for a read index and may raise
    ``RaftUsageError``; ``submit(fn)`` runs ``fn`` on the Ready loop's next turn.
    Both come from the node, which also reports answers and leader changes.
    """

    def __init__(
        self, start: Callable[[bytes, bool], None], submit: Callable[[Callable[[], None]], object]
    ) -> None:
        self._start = start
        self._submit = submit
        self._ids = itertools.count(1)
        self._open: dict[bool, ReadBatch] = {}
        self._inflight: dict[bool, tuple[ReadBatch, asyncio.TimerHandle]] = {}
        self._sent: dict[bytes, tuple[bool, ReadBatch]] = {}

    async def wait(self, lease: bool, deadline: float) -> int | None:
        """The read index for a read that begins now; None if not answered by ``deadline``.

        ``deadline`` is on the ``time.monotonic`` clock.
        """
        batch = self._join(lease)
        batch.readers += 1
        try:
            timeout = max(0.0, deadline - time.monotonic())
            done, _ = await asyncio.wait((batch.future,), timeout=timeout)
            return batch.future.result() if done else None
        finally:
            batch.readers -= 1

    def answered(self, context: bytes, index: int) -> None:
        """The core confirmed ``index`` for the request ``context`` (from a Ready)."""
        found = self._sent.pop(context, None)
        if found is None:
            return
        lease, batch = found
        if not batch.future.done():
            batch.future.set_result(index)
        self._land(lease, batch)

    def leader_changed(self) -> None:
        for lease, (batch, _) in list(self._inflight.items()):
            self._retry(lease, batch)

    def close(self) -> None:
        for _, timer in self._inflight.values():
            timer.cancel()
        self._inflight.clear()

    def _next_context(self) -> bytes:
        return next(self._ids).to_bytes(8, "big")

    def _join(self, lease: bool) -> ReadBatch:
        batch = self._open.get(lease)
        if batch is None:
            future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            # its readers may all have left: an error is then nobody's to retrieve
            future.add_done_callback(_mark_retrieved)
            batch = self._open[lease] = ReadBatch(self._next_context(), future)
            if lease not in self._inflight:
                self._submit(lambda: self._send(lease))
        return batch

    def _send(self, lease: bool) -> None:
        """Send the open batch, unless a request is out (then it goes when that lands)."""
        if lease not in self._inflight and (batch := self._open.pop(lease, None)) is not None:
            self._dispatch(lease, batch)

    def _dispatch(self, lease: bool, batch: ReadBatch) -> None:
        timer = asyncio.get_running_loop().call_later(RETRY_SECONDS, self._retry, lease, batch)
        self._inflight[lease] = (batch, timer)
        self._sent[batch.context] = (lease, batch)
        try:
            self._start(batch.context, lease)
        except RaftUsageError as exc:
            self._sent.pop(batch.context, None)
            batch.future.set_exception(exc)
            self._land(lease, batch)

    def _land(self, lease: bool, batch: ReadBatch) -> None:
        """``batch``'s request is over: send the reads that queued behind it."""
        inflight = self._inflight.get(lease)
        if inflight is None or inflight[0] is not batch:
            return
        del self._inflight[lease]
        inflight[1].cancel()
        if lease in self._open:
            self._submit(lambda: self._send(lease))

    def _retry(self, lease: bool, batch: ReadBatch) -> None:
        """Give up on ``batch``'s request; send it again on the loop's next turn.

        It stays in flight meanwhile, so the open batch still waits behind it.
        """
        inflight = self._inflight.get(lease)
        if inflight is None or inflight[0] is not batch or batch.context not in self._sent:
            return  # answered, or already given up and about to go again
        del self._sent[batch.context]
        if batch.readers == 0:
            self._land(lease, batch)
            return
        inflight[1].cancel()
        batch.context = self._next_context()
        self._submit(lambda: self._dispatch(lease, batch))


def _mark_retrieved(future: asyncio.Future[int]) -> None:
    if not future.cancelled():
        future.exception()
