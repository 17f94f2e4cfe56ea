"""A forwarded write whose answer is lost is answered "unknown", and never applied twice.

With ``--forward-writes http`` (the path taken to a version-1 leader), a follower
forwards a write to the leader's admin URL over HTTP. Here that URL
is a relay in the test (``--advertise-admin`` points at it) that passes the
request on, waits until the leader has answered (the write is applied), then
stops listening and resets the follower's connection instead of relaying the
answer: what a follower sees when the leader's process or link dies just after
applying. aiohttp would resend the PUT by itself (it counts PUT as
idempotent); if that resend's connect is refused, a forwarder that took it for
"never reached the leader" answered 503 ``no_leader`` ("nothing happened") for
an applied write, and if the relay was back quickly the write was applied twice.

The follower (sidecar ``forwarding.py``) must answer 504, an unknown outcome,
and never resend a write on its own, unless the write carries ``X-Request-Id``:
the leader deduplicates those, so the follower sends it again and relays the
original answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ..sidecar.cluster import Cluster, Node, http
from .proxy import abort_with_rst

LEADER_TIMEOUT = 30.0


class DyingRelay:
    """Relays bytes to ``upstream``; once ``armed``, the first answer byte kills it instead,
    and it listens again after ``down_for`` seconds (never if None). ``close`` stops
    listening and closes every relayed connection."""

    def __init__(self, upstream: int, down_for: float | None) -> None:
        self.upstream = upstream
        self.down_for = down_for
        self.armed = False
        self.killed = asyncio.Event()
        self.server: asyncio.Server | None = None
        self.port = 0
        self.connections: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        self.connections |= {writer, up_writer}

        async def requests() -> None:
            while data := await reader.read(65536):
                up_writer.write(data)
                await up_writer.drain()

        pump = asyncio.create_task(requests())
        try:
            while data := await up_reader.read(65536):
                if self.armed:
                    await self._die(writer)
                    return
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            pump.cancel()
            self.connections -= {writer, up_writer}
            up_writer.close()
            writer.close()

    async def _die(self, writer: asyncio.StreamWriter) -> None:
        self.armed = False
        assert self.server is not None
        self.server.close()  # the resend's connect is refused
        abort_with_rst(writer)
        self.killed.set()
        if self.down_for is not None:
            await asyncio.sleep(self.down_for)  # the outage lasts this long (not a sync)
            await self.start()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for writer in self.connections:
            writer.close()


@contextlib.asynccontextmanager
async def _relayed_cluster(
    tmp_path: Path, down_for: float | None
) -> AsyncIterator[tuple[Node, Node, DyingRelay]]:
    """3 nodes whose admin URLs are relays; yields (leader, a follower, the leader's relay)
    once a write forwarded through the relay has worked. App writes take the HTTP path
    (``--forward-writes http``, as with a version-1 leader) so they meet the relay."""
    cluster = Cluster(tmp_path / "cluster", 3, extra_args=("--forward-writes", "http"))
    relays = {n.id: DyingRelay(n.admin_port, down_for) for n in cluster.nodes.values()}
    try:
        for node in cluster.nodes.values():
            await relays[node.id].start()
            node.args += ["--advertise-admin", relays[node.id].url]  # the last one wins
        await asyncio.to_thread(cluster.start)
        leader = await asyncio.to_thread(cluster.leader, LEADER_TIMEOUT)
        follower = cluster.followers(leader)[0]
        warm = await asyncio.to_thread(http, "PUT", follower.app + "/v1/kv/warm", data=b"0")
        assert warm.status_code == 200, warm.text  # forwarding through the relay works
        yield leader, follower, relays[leader.id]
    finally:
        for relay in relays.values():
            await relay.close()
        with contextlib.suppress(Exception):
            await asyncio.to_thread(cluster.close)


async def _put_k(follower: Node, leader: Node, headers: dict[str, str]) -> tuple[int, str, int]:
    """PUT k through ``follower``; its answer (status, body) and k's version on the leader
    (0 if absent)."""
    answer = await asyncio.to_thread(
        http, "PUT", follower.app + "/v1/kv/k", data=b"v", headers=headers
    )
    stored = await asyncio.to_thread(http, "GET", leader.app + "/v1/kv?prefix=k&consistency=stale")
    versions = [int(item["version"]) for item in stored.json()["items"]]
    return answer.status_code, answer.text, sum(versions)


async def _forward_through_dying_relay(
    tmp_path: Path, down_for: float | None, headers: dict[str, str] | None = None
) -> tuple[int, str, int]:
    """Write through a follower while the leader's relay dies after the leader answered."""
    async with _relayed_cluster(tmp_path, down_for) as (leader, follower, relay):
        relay.armed = True
        outcome = await _put_k(follower, leader, headers or {})
        assert relay.killed.is_set()
        return outcome


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_applied_write_is_answered_unknown_not_503(tmp_path: Path) -> None:
    status, body, version = await _forward_through_dying_relay(tmp_path, down_for=None)
    assert status == 504, f"the write was applied, yet the follower answered {status} {body}"
    assert json.loads(body)["error"] == "timeout"
    assert "unknown" in json.loads(body)["message"]
    assert version == 1


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_forwarded_write_is_applied_once(tmp_path: Path) -> None:
    status, body, version = await _forward_through_dying_relay(tmp_path, down_for=0.05)
    assert version == 1, f"one PUT, version {version} (answered {status} {body})"
    assert status == 504, body


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_write_with_request_id_is_resent_and_answered_once(tmp_path: Path) -> None:
    headers = {"X-Request-Id": "forwarded-once"}
    status, body, version = await _forward_through_dying_relay(tmp_path, 0.05, headers)
    assert status == 200, body
    assert version == 1, f"one PUT, version {version}"


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_unreachable_leader_is_503_as_nothing_was_sent(tmp_path: Path) -> None:
    async with _relayed_cluster(tmp_path, down_for=None) as (leader, follower, relay):
        await relay.close()  # every connect to the leader's admin URL is refused
        status, body, version = await _put_k(follower, leader, {})
    assert status == 503, body
    assert json.loads(body)["error"] == "no_leader"
    assert version == 0, "a refused connect sent the write nonetheless"
