"""Bad input on the peer port closes that connection only, is counted, and spares others."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator

import msgpack

from raftpod_sidecar.raft.messages import MessageType
from raftpod_sidecar.transport.codec import encode_batch
from raftpod_sidecar.transport.frames import frame_header, read_frame
from raftpod_sidecar.transport.handshake import (
    PROTOCOL_VERSION,
    Hello,
    decode_reply,
    encode_hello,
)
from raftpod_sidecar.transport.peers import PeerTransport

from .harness import FAST, Inbox, addr, app, poll, start_node


@contextlib.asynccontextmanager
async def pair() -> AsyncIterator[tuple[PeerTransport, PeerTransport, Inbox]]:
    """A good sender ``a`` already talking to ``b``; yields (a, b, b's inbox)."""
    inbox_a, inbox_b = Inbox(), Inbox()
    a = await start_node("a", inbox_a)
    b = await start_node("b", inbox_b, options=FAST._replace(max_frame_bytes=10_000))
    a.update_peers({"b": addr(b)})
    try:
        a.send([app("a", "b", 0)])
        await inbox_b.until(lambda: len(inbox_b.messages) == 1)
        yield a, b, inbox_b
    finally:
        await a.stop()
        await b.stop()


async def _raw(b: PeerTransport) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", b.port)


async def _hello(writer: asyncio.StreamWriter, reader: asyncio.StreamReader, **kw: str) -> bool:
    fields = {"cluster_id": "", "from_id": "x", "to_id": "b", **kw}
    hello = Hello(PROTOCOL_VERSION, fields["cluster_id"], fields["from_id"], fields["to_id"])
    payload = encode_hello(hello)
    writer.write(frame_header(len(payload)) + payload)
    await writer.drain()
    reply = await read_frame(reader, 4096)
    assert reply is not None
    return decode_reply(reply).accepted


async def _closed_by_server(reader: asyncio.StreamReader) -> None:
    async with asyncio.timeout(5):
        rest = await reader.read()
    assert rest == b""


async def _good_peer_still_works(a: PeerTransport, inbox_b: Inbox, index: int) -> None:
    a.send([app("a", "b", index)])
    await inbox_b.until(lambda: inbox_b.messages[-1].index == index)
    assert a.counters.reconnects == 0


async def test_garbage_before_handshake_closes_only_that_connection() -> None:
    async with pair() as (a, b, inbox_b):
        reader, writer = await _raw(b)
        writer.write(b"\x00\x00\x00\x10GET / HTTP/1.1\r\n\r\n")
        await writer.drain()
        await _closed_by_server(reader)
        writer.close()
        await poll(lambda: b.counters.handshake_failures == 1)
        await _good_peer_still_works(a, inbox_b, 1)


async def test_oversized_frame_after_handshake_is_refused_unread() -> None:
    async with pair() as (a, b, inbox_b):
        reader, writer = await _raw(b)
        assert await _hello(writer, reader)
        writer.write(frame_header(10_001))
        await writer.drain()
        await _closed_by_server(reader)
        writer.close()
        await poll(lambda: b.counters.oversized == 1)
        await _good_peer_still_works(a, inbox_b, 1)


async def test_oversized_hello_is_refused() -> None:
    async with pair() as (a, b, inbox_b):
        reader, writer = await _raw(b)
        writer.write(frame_header(1 << 20))
        await writer.drain()
        await _closed_by_server(reader)
        writer.close()
        await poll(lambda: b.counters.oversized == 1)
        await _good_peer_still_works(a, inbox_b, 1)


async def test_wrong_target_and_wrong_cluster_are_refused_with_a_reason() -> None:
    inbox_a, inbox_b = Inbox(), Inbox()
    b = await start_node("b", inbox_b, cluster_id="c1")
    a = await start_node("a", inbox_a, cluster_id="c1")
    try:
        for fields in ({"to_id": "nX", "cluster_id": "c1"}, {"cluster_id": "c2"}):
            reader, writer = await _raw(b)
            assert not await _hello(writer, reader, **fields)
            await _closed_by_server(reader)
            writer.close()
        assert b.counters.handshake_failures == 2
        # A transport that believes "n9" lives at b's address is refused and reports n9.
        a.update_peers({"n9": addr(b), "b": addr(b)})
        await inbox_a.until(lambda: "n9" in inbox_a.unreachable)
        a.send([app("a", "b", 7)])
        await inbox_b.until(lambda: len(inbox_b.messages) == 1)
        assert a.counters.dial_failures >= 1
        assert b.counters.handshake_failures >= 3
    finally:
        await a.stop()
        await b.stop()


async def test_malformed_batch_and_spoofed_sender_are_counted_as_malformed() -> None:
    async with pair() as (a, b, inbox_b):
        bad_payloads = [
            msgpack.packb([[1, 2, 3]]),
            encode_batch([app("a", "b", 9)]),  # claims to come from "a" on x's connection
            encode_batch([app("x", "someone-else", 9)]),
        ]
        for payload in bad_payloads:
            reader, writer = await _raw(b)
            assert await _hello(writer, reader, from_id="x")
            writer.write(frame_header(len(payload)) + payload)
            await writer.drain()
            await _closed_by_server(reader)
            writer.close()
        await poll(lambda: b.counters.malformed == len(bad_payloads))
        assert all(m.frm == "a" and m.index != 9 for m in inbox_b.messages)
        await _good_peer_still_works(a, inbox_b, 1)


async def test_silent_connection_times_out_in_handshake() -> None:
    inbox = Inbox()
    b = await start_node("b", inbox, options=FAST._replace(handshake_timeout=0.2))
    try:
        reader, writer = await _raw(b)
        await _closed_by_server(reader)
        writer.close()
        await poll(lambda: b.counters.handshake_failures == 1)
    finally:
        await b.stop()


async def test_valid_frames_from_a_raw_client_are_delivered() -> None:
    """Guards the negative tests above: the same raw client succeeds when it behaves."""
    async with pair() as (_a, b, inbox_b):
        reader, writer = await _raw(b)
        assert await _hello(writer, reader, from_id="x")
        payload = encode_batch([app("x", "b", 5), app("x", "b", 6)])
        writer.write(frame_header(len(payload)) + payload)
        await writer.drain()
        await inbox_b.until(lambda: [m.index for m in inbox_b.messages if m.frm == "x"] == [5, 6])
        assert inbox_b.messages[-1].type == MessageType.APP
        writer.close()
        assert b.counters.malformed == 0


async def test_random_frames_after_handshake_are_each_counted_and_contained() -> None:
    rng = random.Random(7)
    async with pair() as (a, b, inbox_b):
        rounds = 25
        for _ in range(rounds):
            reader, writer = await _raw(b)
            assert await _hello(writer, reader, from_id="x")
            payload = rng.randbytes(rng.randint(1, 300))
            writer.write(frame_header(len(payload)) + payload)
            await writer.drain()
            await _closed_by_server(reader)
            writer.close()
        await poll(lambda: b.counters.malformed == rounds)
        assert b.counters.handshake_failures == 0
        await _good_peer_still_works(a, inbox_b, 1)
