"""The fault-injecting proxy really cuts and heals links (real sockets on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from .proxy import Mode, Network

SILENCE = 0.3
"""How long a cut link must stay silent; a pass link answers in milliseconds."""


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(1024):
        writer.write(data)
        await writer.drain()
    writer.close()


@pytest.fixture
async def network() -> AsyncIterator[tuple[Network, asyncio.Server]]:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    net = Network()
    await net.add("a", "b", server.sockets[0].getsockname()[1])
    try:
        yield net, server
    finally:
        await net.close()
        server.close()
        await server.wait_closed()


async def _dial(net: Network) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", net.links[("a", "b")].port)


async def _roundtrip(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes
) -> bytes:
    writer.write(data)
    await writer.drain()
    return await asyncio.wait_for(reader.readexactly(len(data)), 5)


async def test_pass_forwards_both_ways(network: tuple[Network, asyncio.Server]) -> None:
    net, _ = network
    reader, writer = await _dial(net)
    assert await _roundtrip(reader, writer, b"hello") == b"hello"
    assert net.links[("a", "b")].bytes_forwarded == 10
    writer.close()


async def test_drop_blackholes_then_heal_delivers_late(
    network: tuple[Network, asyncio.Server],
) -> None:
    net, _ = network
    reader, writer = await _dial(net)
    assert await _roundtrip(reader, writer, b"before") == b"before"
    net.cut([("a", "b")], Mode.DROP)
    assert net.cut_links() == {("a", "b")}
    writer.write(b"during")
    await writer.drain()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.readexactly(6), SILENCE)
    # a new connection is accepted but nothing crosses either
    reader2, writer2 = await _dial(net)
    writer2.write(b"fresh")
    await writer2.drain()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader2.readexactly(5), SILENCE)
    net.heal()
    assert net.cut_links() == set()
    assert await asyncio.wait_for(reader.readexactly(6), 5) == b"during"
    assert await asyncio.wait_for(reader2.readexactly(5), 5) == b"fresh"
    writer.close()
    writer2.close()


async def test_reset_aborts_open_and_new_connections(
    network: tuple[Network, asyncio.Server],
) -> None:
    net, _ = network
    reader, writer = await _dial(net)
    assert await _roundtrip(reader, writer, b"x") == b"x"
    net.cut([("a", "b")], Mode.RESET)
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(1), 5)
    reader2, _ = await _dial(net)
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader2.read(1), 5)
    net.heal()
    reader3, writer3 = await _dial(net)
    assert await _roundtrip(reader3, writer3, b"again") == b"again"
    writer3.close()


async def test_cut_only_touches_the_chosen_direction() -> None:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    net = Network()
    try:
        await net.full_mesh(["a", "b", "c"])
        net.route({"a": port, "b": port, "c": port})
        assert len(net.links) == 6
        flag = net.peers_flag("a", "127.0.0.1:1")
        assert flag.startswith("a=127.0.0.1:1,b=127.0.0.1:")
        assert f"c={net.links[('a', 'c')].address}" in flag
        net.cut([("a", "b")])
        r_ba, w_ba = await asyncio.open_connection("127.0.0.1", net.links[("b", "a")].port)
        assert await _roundtrip(r_ba, w_ba, b"ok") == b"ok"
        r_ab, w_ab = await asyncio.open_connection("127.0.0.1", net.links[("a", "b")].port)
        w_ab.write(b"no")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(r_ab.readexactly(2), SILENCE)
        w_ba.close()
        w_ab.close()
    finally:
        await net.close()
        server.close()
        await server.wait_closed()


async def test_destination_down_resets_the_dialer() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        net = Network()
        try:
            await net.add("a", "b", unused.getsockname()[1])
            reader, _ = await _dial(net)
            with pytest.raises(ConnectionResetError):
                await asyncio.wait_for(reader.read(1), 5)
        finally:
            await net.close()
