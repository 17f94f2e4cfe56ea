"""A forwarded write whose answer is lost must not be reported failed, nor applied twice.

A follower forwards a write to the leader's admin URL over HTTP. Here that URL
is a relay in the test (``--advertise-admin`` points at it) that passes the
request on, waits until the leader has answered (the write is applied), then
stops listening and resets the follower's connection instead of relaying the
answer: what a follower sees when the leader's process or link dies just after
applying. aiohttp then resends the PUT by itself, the resend's connect is
refused, and ``ClientConnectorError`` reaches ``forwarding.Forwarder`` although
the request was sent. The forwarder takes that for "never reached the leader":

- if the relay stays down it answers 503 ``no_leader`` (documented as "nothing
  happened") for a write that was applied;
- if the relay is back quickly it forwards again and the write is applied twice.

Both are node bugs (sidecar ``forwarding.py``), marked xfail until fixed; a
fix would treat a connector error after anything was sent as an unknown
outcome (504), or disable aiohttp's resend.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from ..sidecar.cluster import Cluster, http
from .proxy import abort_with_rst

LEADER_TIMEOUT = 30.0
BUG = "sidecar forwarding.py takes aiohttp's refused resend of a sent PUT for 'never sent'"


class DyingRelay:
    """Relays bytes to ``upstream``; once ``armed``, the first answer byte kills it instead,
    and it listens again after ``down_for`` seconds (never if None)."""

    def __init__(self, upstream: int, down_for: float | None) -> None:
        self.upstream = upstream
        self.down_for = down_for
        self.armed = False
        self.killed = asyncio.Event()
        self.server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)

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


async def _forward_through_dying_relay(
    tmp_path: Path, down_for: float | None
) -> tuple[int, str, int]:
    """Start 3 nodes behind relays, write through a follower while the leader's relay dies;
    returns the follower's answer (status, body) and the key's version on the leader."""
    cluster = Cluster(tmp_path / "cluster", 3)
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
        relays[leader.id].armed = True
        answer = await asyncio.to_thread(http, "PUT", follower.app + "/v1/kv/k", data=b"v")
        assert relays[leader.id].killed.is_set()
        stored = await asyncio.to_thread(
            http, "GET", leader.app + "/v1/kv?prefix=k&consistency=stale"
        )
        (item,) = stored.json()["items"]  # the leader applied the write
        return answer.status_code, answer.text, int(item["version"])
    finally:
        for relay in relays.values():
            await relay.close()
        with contextlib.suppress(Exception):
            await asyncio.to_thread(cluster.close)


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.xfail(strict=True, reason=BUG)
async def test_applied_write_is_not_answered_503(tmp_path: Path) -> None:
    status, body, _ = await _forward_through_dying_relay(tmp_path, down_for=None)
    assert status != 503, f"the write was applied, yet the follower answered {status} {body}"


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.xfail(strict=True, reason=BUG)
async def test_forwarded_write_is_applied_once(tmp_path: Path) -> None:
    status, body, version = await _forward_through_dying_relay(tmp_path, down_for=0.05)
    assert version == 1, f"one PUT, version {version} (answered {status} {body})"
