"""Protocol versions in the hello, for rolling upgrades: dialers say 1, listeners answer
with their own version, and each transport remembers what every peer answered."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from raftpod_sidecar.transport.codec import decode_batch
from raftpod_sidecar.transport.frames import read_frame, write_frame
from raftpod_sidecar.transport.handshake import (
    FORWARDED_PROPOSALS_VERSION,
    HELLO_VERSION,
    PROTOCOL_VERSION,
    Hello,
    HelloReply,
    check_hello,
    decode_hello,
    decode_reply,
    encode_hello,
    encode_reply,
)

from .harness import Inbox, addr, app, poll, start_node


class FakeListener:
    """A peer port of another release: records hellos, answers ``version``, reads frames."""

    def __init__(self, version: int) -> None:
        self.version = version
        self.hellos: list[Hello] = []
        self.inbox = Inbox()
        self._writers: list[asyncio.StreamWriter] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        payload = await read_frame(reader, 4096)
        assert payload is not None
        self.hellos.append(decode_hello(payload))
        write_frame(writer, encode_reply(HelloReply(self.version, True, "")))
        await writer.drain()
        while (frame := await read_frame(reader, 1 << 20)) is not None:
            self.inbox.on_messages(decode_batch(frame))

    def abort(self) -> None:
        for w in self._writers:
            w.transport.abort()


@contextlib.asynccontextmanager
async def fake_listener(version: int) -> AsyncIterator[tuple[FakeListener, str]]:
    """Yields the fake and its address; closes it and its connections on exit."""
    fake = FakeListener(version)
    server = await asyncio.start_server(fake.serve, "127.0.0.1", 0)
    try:
        yield fake, f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        fake.abort()
        server.close()
        await server.wait_closed()


def test_versions_are_what_upgrades_rely_on() -> None:
    assert (HELLO_VERSION, PROTOCOL_VERSION, FORWARDED_PROPOSALS_VERSION) == (1, 2, 2)


async def test_two_current_transports_see_each_other_at_version_2() -> None:
    inbox_a, inbox_b = Inbox(), Inbox()
    a = await start_node("a", inbox_a)
    b = await start_node("b", inbox_b)
    try:
        assert a.peer_version("b") == b.peer_version("a") == 0  # not peers yet
        a.update_peers({"b": addr(b)})
        b.update_peers({"a": addr(a)})
        await poll(lambda: a.peer_version("b") == b.peer_version("a") == 2)
        assert a.peer_version("nobody") == 0
    finally:
        await a.stop()
        await b.stop()


async def test_version_1_listener_is_recorded_and_still_gets_messages() -> None:
    inbox = Inbox()
    a = await start_node("a", inbox)
    async with fake_listener(version=1) as (old, address):
        try:
            a.update_peers({"b": address})
            await poll(lambda: a.peer_version("b") == 1)
            a.send([app("a", "b", 0), app("a", "b", 1)])
            await old.inbox.until(lambda: len(old.inbox.messages) == 2)
            assert [m.index for m in old.inbox.messages] == [0, 1]
            assert a.peer_version("b") == 1
        finally:
            await a.stop()


async def test_dialer_announces_version_1_even_to_a_version_2_listener() -> None:
    inbox = Inbox()
    a = await start_node("a", inbox, cluster_id="prod")
    async with fake_listener(version=2) as (new, address):
        try:
            a.update_peers({"b": address})
            await poll(lambda: a.peer_version("b") == 2)
            assert new.hellos[0] == Hello(1, "prod", "a", "b")
        finally:
            await a.stop()


@pytest.mark.parametrize("version", [1, 2])
def test_check_hello_accepts_versions_1_and_2(version: int) -> None:
    assert check_hello(Hello(version, "", "a", "b"), "b", "") == ""


@pytest.mark.parametrize("version", [0, 3])
def test_check_hello_refuses_other_versions_naming_the_range(version: int) -> None:
    reason = check_hello(Hello(version, "", "a", "b"), "b", "")
    assert f"version {version} unsupported" in reason and "want 1 to 2" in reason


@pytest.mark.parametrize(("version", "accepted"), [(1, True), (2, True), (3, False)])
async def test_listener_answers_its_own_version_to_every_hello(
    version: int, accepted: bool
) -> None:
    b = await start_node("b", Inbox())
    reader, writer = await asyncio.open_connection("127.0.0.1", b.port)
    try:
        write_frame(writer, encode_hello(Hello(version, "", "a", "b")))
        await writer.drain()
        async with asyncio.timeout(5):
            payload = await read_frame(reader, 4096)
        assert payload is not None
        reply = decode_reply(payload)
        assert (reply.version, reply.accepted) == (2, accepted)
        assert ("want 1 to 2" in reply.reason) is not accepted
    finally:
        writer.transport.abort()
        await b.stop()
