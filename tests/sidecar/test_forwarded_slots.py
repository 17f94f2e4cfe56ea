"""ForwardedWrites' session slots: reused with the next seq, bounded, waited for."""

from __future__ import annotations

import asyncio
import time

import pytest

from raftpod_sidecar.forwarded_writes import ForwardedWrites, SlotsExhaustedError


async def test_a_released_slot_takes_the_next_seq_of_its_session() -> None:
    slots = ForwardedWrites("n1", max_slots=4)
    client, seq = await slots.acquire(time.monotonic() + 1)
    assert client.startswith("fwd:n1:") and seq == 1
    slots.release(client, seq)
    assert await slots.acquire(time.monotonic() + 1) == (client, 2)


async def test_no_free_slot_waits_for_a_release_or_the_deadline() -> None:
    slots = ForwardedWrites("n1", max_slots=2)
    held = [await slots.acquire(time.monotonic() + 1) for _ in range(2)]
    assert len({client for client, _ in held}) == 2
    with pytest.raises(SlotsExhaustedError, match="2 forwarded writes"):
        await slots.acquire(time.monotonic() + 0.01)
    waiting = asyncio.create_task(slots.acquire(time.monotonic() + 5))
    await asyncio.sleep(0)
    assert not waiting.done()
    slots.release(*held[0])
    assert await waiting == (held[0][0], held[0][1] + 1)
