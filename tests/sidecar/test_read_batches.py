"""ReadBatches: one ReadIndex request in flight per kind; later reads share the next one.

The Raft core is stood in for by a recorder of the requests it is asked for
(``started``), and the Ready loop's turns by running the submitted callbacks
(``turn``): the module's whole contract is which requests go out when, and
which answer each read gets.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable

import pytest

from raftpod_sidecar import read_batches
from raftpod_sidecar.raft.errors import NotLeaderError
from raftpod_sidecar.read_batches import ReadBatches

LONG = 30.0  # a read deadline no test reaches


class Loop:
    """The node's side: records core requests, runs submitted work on ``turn``."""

    def __init__(self) -> None:
        self.started: list[tuple[bytes, bool]] = []
        self.submitted: list[Callable[[], None]] = []
        self.refuse = False
        self.batches = ReadBatches(self.start, self.submitted.append)

    def start(self, context: bytes, lease: bool) -> None:
        if self.refuse:
            raise NotLeaderError("", 1)
        self.started.append((context, lease))

    async def turn(self) -> None:
        """Let readers reach their wait, then run one turn of the Ready loop."""
        for _ in range(3):
            await asyncio.sleep(0)
        work, self.submitted[:] = list(self.submitted), []
        for fn in work:
            fn()

    def read(self, lease: bool = False, timeout: float = LONG) -> asyncio.Task[int | None]:
        deadline = time.monotonic() + timeout
        return asyncio.create_task(self.batches.wait(lease, deadline))


async def test_reads_before_a_turn_share_one_request() -> None:
    loop = Loop()
    reads = [loop.read() for _ in range(5)]
    await loop.turn()
    assert len(loop.started) == 1
    loop.batches.answered(loop.started[0][0], 7)
    assert await asyncio.gather(*reads) == [7] * 5


async def test_reads_during_a_request_wait_for_the_next_one() -> None:
    loop = Loop()
    first = loop.read()
    await loop.turn()
    later = [loop.read() for _ in range(3)]
    await loop.turn()
    assert len(loop.started) == 1, "a second request went out while the first was in flight"
    loop.batches.answered(loop.started[0][0], 7)
    assert await first == 7
    await loop.turn()
    assert len(loop.started) == 2
    assert not any(r.done() for r in later), "later reads took an index confirmed before them"
    loop.batches.answered(loop.started[1][0], 9)
    assert await asyncio.gather(*later) == [9] * 3


async def test_lease_and_linearizable_reads_have_their_own_requests() -> None:
    loop = Loop()
    plain, lease = loop.read(), loop.read(lease=True)
    await loop.turn()
    assert sorted(kind for _, kind in loop.started) == [False, True]
    for context, kind in loop.started:
        loop.batches.answered(context, 5 if kind else 4)
    assert (await plain, await lease) == (4, 5)


async def test_an_unanswered_request_is_retried_with_its_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(read_batches, "RETRY_SECONDS", 0.01)
    loop = Loop()
    read = loop.read()
    await loop.turn()
    lost = loop.started[0][0]
    deadline = time.monotonic() + 5.0
    while not loop.submitted:  # the retry timer queues the next request
        assert time.monotonic() < deadline, "the unanswered request was never retried"
        await asyncio.sleep(0.005)
    await loop.turn()
    assert len(loop.started) == 2
    loop.batches.answered(lost, 3)  # a late answer to the given-up request is ignored
    assert not read.done()
    loop.batches.answered(loop.started[1][0], 8)
    assert await read == 8


async def test_a_leader_change_resends_at_once() -> None:
    loop = Loop()
    read = loop.read()
    await loop.turn()
    loop.batches.leader_changed()
    loop.batches.leader_changed()  # twice before the loop's turn: still one request again
    await loop.turn()
    assert len(loop.started) == 2
    loop.batches.answered(loop.started[1][0], 11)
    assert await read == 11


async def test_a_request_whose_readers_all_left_is_not_retried() -> None:
    loop = Loop()
    read = loop.read(timeout=0.01)
    await loop.turn()
    assert await read is None
    loop.batches.leader_changed()
    await loop.turn()
    assert len(loop.started) == 1


async def test_a_refused_request_fails_its_reads_and_frees_the_slot() -> None:
    loop = Loop()
    loop.refuse = True
    refused = loop.read()
    await loop.turn()
    with pytest.raises(NotLeaderError):
        await refused
    loop.refuse = False
    read = loop.read()
    await loop.turn()
    assert len(loop.started) == 1
    loop.batches.answered(loop.started[0][0], 2)
    assert await read == 2


async def test_close_forgets_the_request_in_flight() -> None:
    loop = Loop()
    read = loop.read()
    await loop.turn()
    loop.batches.close()
    loop.batches.leader_changed()
    assert loop.submitted == []
    read.cancel()


async def test_an_error_nobody_waits_for_is_not_reported_as_unretrieved() -> None:
    reported: list[dict[str, object]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _, context: reported.append(context))
    loop = Loop()
    loop.refuse = True
    assert await loop.read(timeout=0.0) is None  # the reader left before the loop's turn
    await loop.turn()  # then the request is refused
    gc.collect()
    assert reported == []
