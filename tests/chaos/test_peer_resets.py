"""Peer links must come back after their connections are reset, however often.

The proxy resets every peer connection (TCP RST) again and again while clients
keep the leader busy replicating, then heals for good. Afterwards every node
must serve a linearizable read (its link to the leader works), the leader must
see every member caught up (its links to them work), and no sender task died.

The regression this guards (``transport/peers.py``): under uvloop, a write on
a peer connection the loop has just closed after reading the peer's RST raises
``RuntimeError``, not ``OSError``; the sender loop let it escape, so that
peer's sender task died ("sender for nX died") and the node never sent to that
peer again. The write lands in that window when the node writes within a few
loop iterations of reading the RST, which a busy leader (several writers) does
on most resets: the old sender died in every run tried.
"""

from __future__ import annotations

import asyncio
import random
import re
import time

import pytest

from ..sidecar.cluster import poll
from .clients import Client
from .history import OK, History
from .proxied import LEADER_TIMEOUT, Proxied
from .proxy import Mode

RESETS = 12
WRITERS = 8
"""Concurrent writers on the leader: enough that it writes to peers right after a reset."""
SENDER_DIED = re.compile(r"sender for \S+ died")
RECOVERY_SECONDS = 20.0
"""Generous: the machine may be shared with other test runs."""


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_peer_links_recover_after_repeated_resets(proxied: Proxied) -> None:
    cluster, network = proxied.cluster, proxied.network
    leader = await asyncio.to_thread(cluster.leader, LEADER_TIMEOUT)
    history = History()
    stop = asyncio.Event()

    async def keep_writing(index: int) -> None:
        rng = random.Random(index)
        async with Client(index, WRITERS, leader.id, leader.app, history=history, rng=rng) as c:
            while not stop.is_set():
                await c.put(f"k{index}")

    writers = [asyncio.create_task(keep_writing(i)) for i in range(WRITERS)]
    try:
        for _ in range(RESETS):
            network.cut(set(network.links), Mode.RESET)
            await asyncio.sleep(0.1)  # the outage lasts this long (not a sync)
            network.heal()
            await asyncio.sleep(0.4)  # traffic flows again until the next reset
    finally:
        stop.set()
        await asyncio.gather(*writers)
    assert history.counts()[OK] > 0
    for node in cluster.nodes.values():
        assert not SENDER_DIED.search(node.log_text()), f"a sender task of {node.id} died"

    leader = await asyncio.to_thread(cluster.leader, RECOVERY_SECONDS)
    deadline = time.monotonic() + RECOVERY_SECONDS
    for node in cluster.nodes.values():
        async with Client(1, 1, node.id, node.app, history=history, rng=random.Random(0)) as c:
            read, _ = await c.get("k0")
            while read.status != OK and time.monotonic() < deadline:
                await asyncio.sleep(0.1)  # pacing retries, not synchronisation
                read, _ = await c.get("k0")
        assert read.status == OK, f"{node.id} cannot read linearizably: {read}"

    def caught_up() -> bool:
        members = leader.status()["members"]
        return all(m.get("lag", 0) == 0 for m in members if m["id"] != leader.id)

    await asyncio.to_thread(poll, caught_up, RECOVERY_SECONDS, "every member to catch up")
