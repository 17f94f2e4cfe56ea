"""Concurrent linearizable reads on one node share ReadIndex requests (as etcd batches them).

Without batching every read costs a READ_INDEX message to the leader and a
heartbeat round; with it, the reads that arrive before the node's Ready loop
next runs wait for one request. Observable from outside as the node's peer
messages: 64 concurrent reads on a follower must cost far fewer than 64.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import aiohttp
import pytest

from .cluster import Cluster, http, metric_total, running

READERS = 64


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running(tmp_path_factory.mktemp("reads"), 3) as c:
        c.leader()
        yield c


async def _read_all(url: str) -> list[tuple[int, bytes]]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def read() -> tuple[int, bytes]:
            async with session.get(url) as answer:
                return answer.status, await answer.read()

        return await asyncio.gather(*(read() for _ in range(READERS)))


def test_concurrent_reads_on_a_follower_share_read_index_requests(cluster: Cluster) -> None:
    follower = cluster.followers(cluster.leader())[0]
    put = http("PUT", follower.app + "/v1/kv/batched", data=b"v1")
    assert put.status_code == 200, put.text
    before = metric_total(follower.admin, "raftpod_peer_messages_out_total")
    answers = asyncio.run(_read_all(follower.app + "/v1/kv/batched?consistency=linearizable"))
    sent = metric_total(follower.admin, "raftpod_peer_messages_out_total") - before
    assert answers == [(200, b"v1")] * READERS
    # one READ_INDEX per read would be >= 64, plus the heartbeat answers of each round
    assert sent < READERS / 2, f"{sent} peer messages for {READERS} concurrent reads"
