"""A peer link reset mid-stream under uvloop is redialed, and messages flow again.

Under uvloop a write on a transport the loop has already closed (it read the
peer's TCP RST) raises ``RuntimeError``, not ``OSError``, and such a write can
come before the sender's end-of-stream watcher has run. Each round resets the
link, lets a few loop iterations pass (the RST is read during one of them), then
queues a message: with 2 or 3 quiet iterations (uvloop 0.23) that write lands in
exactly that window. A sender that let the error escape died there, without
reporting the peer unreachable and without ever redialing.
"""

from __future__ import annotations

import asyncio

import pytest

from raftpod_sidecar.transport.peers import PeerTransport

from ..chaos.proxy import Mode, ProxyLink
from .harness import Inbox, app, start_node

uvloop = pytest.importorskip("uvloop")

MAX_QUIET_ITERATIONS = 6
"""Rounds with 0..5 loop iterations between the reset and the next write."""


async def _reset_round(
    a: PeerTransport, inbox_a: Inbox, inbox_b: Inbox, link: ProxyLink, *, quiet: int, index: int
) -> None:
    """Reset the link, send message ``index`` after ``quiet`` iterations, wait for ``a`` to
    report b unreachable, heal, and wait for message ``index + 1`` to arrive."""
    reports = len(inbox_a.unreachable)
    link.set_mode(Mode.RESET)
    for _ in range(quiet):
        await asyncio.sleep(0)  # one loop iteration, not a wait for time
    a.send([app("a", "b", index)])
    await inbox_a.until(lambda: len(inbox_a.unreachable) > reports, within=5.0)
    link.set_mode(Mode.PASS)
    a.send([app("a", "b", index + 1)])
    await inbox_b.until(lambda: inbox_b.messages[-1].index == index + 1, within=5.0)


async def _reset_rounds() -> None:
    inbox_a, inbox_b = Inbox(), Inbox()
    b = await start_node("b", inbox_b)
    link = ProxyLink("a", "b", b.port)
    await link.start()
    a = await start_node("a", inbox_a)
    a.update_peers({"b": link.address})
    try:
        a.send([app("a", "b", 0)])
        await inbox_b.until(lambda: len(inbox_b.messages) == 1)
        for quiet in range(MAX_QUIET_ITERATIONS):
            await _reset_round(a, inbox_a, inbox_b, link, quiet=quiet, index=1 + 2 * quiet)
        indexes = [m.index for m in inbox_b.messages]
        assert indexes == sorted(set(indexes)), "messages duplicated or reordered"
        assert a.counters.reconnects >= MAX_QUIET_ITERATIONS
    finally:
        await a.stop()
        await b.stop()
        await link.close()


@pytest.mark.timeout(60)
def test_sender_redials_after_resets_under_uvloop() -> None:
    uvloop.run(_reset_rounds())
