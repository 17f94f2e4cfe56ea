"""The follower's client session to the leader never resends a request on its own.

aiohttp resends an "idempotent" request (PUT, DELETE) once when the connection
drops after sending it; a forwarded write may have been applied by then. The
server here reads each request whole, counts it and hangs up without an answer:
what a follower sees when the leader dies just after applying a write.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest

from raftpod_sidecar.forwarding import SentRequestLostError, leader_session


class HangUpServer:
    """Counts complete HTTP requests and closes each connection instead of answering."""

    def __init__(self) -> None:
        self.requests = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
            self.requests += 1
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def hang_up_server() -> AsyncIterator[tuple[HangUpServer, str]]:
    counter = HangUpServer()
    server = await asyncio.start_server(counter.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield counter, f"http://127.0.0.1:{port}/internal/app/v1/kv/k"
    finally:
        server.close()
        await server.wait_closed()


async def test_plain_aiohttp_resends_a_put_whose_connection_dropped() -> None:
    """Why ``leader_session`` exists: if aiohttp stops resending, this documents it."""
    async with hang_up_server() as (server, url), aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await session.put(url, data=b"v")
    assert server.requests == 2


@pytest.mark.parametrize("method", ["PUT", "DELETE", "POST"])
async def test_leader_session_sends_a_write_once_and_says_it_was_sent(method: str) -> None:
    async with hang_up_server() as (server, url):
        session = leader_session()
        try:
            with pytest.raises(SentRequestLostError):
                await session.request(method, url, data=b"v")
        finally:
            await session.close()
    assert server.requests == 1


async def test_leader_session_reports_a_refused_connect_as_nothing_sent() -> None:
    with socket.socket() as placeholder:  # a port nobody listens on
        placeholder.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{placeholder.getsockname()[1]}/internal/app/v1/kv/k"
        session = leader_session()
        try:
            with pytest.raises(aiohttp.ClientConnectorError):
                await session.put(url, data=b"v")
        finally:
            await session.close()
