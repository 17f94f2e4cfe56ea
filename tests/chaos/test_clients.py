"""The client turns app API answers into history statuses as the API documents them.

``FakeNode`` is a real aiohttp server on 127.0.0.1 standing in for a sidecar's
app API: it answers each request with the next scripted status.
"""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from .clients import Client, classify
from .history import FAIL, OK, UNKNOWN, History


class FakeNode:
    """Scripted answers: (status, body, headers) per request, in order; None = never answer."""

    def __init__(self) -> None:
        self.script: list[tuple[int, bytes, dict[str, str]] | None] = []
        self.seen: list[str] = []
        self.request_ids: list[str | None] = []
        self.release = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append(f"{request.method} {request.path_qs}")
        if request.method != "GET":
            self.request_ids.append(request.headers.get("X-Request-Id"))
        answer = self.script.pop(0)
        if answer is None:
            await self.release.wait()  # the client gives up first
            return web.Response(status=500)
        status, body, headers = answer
        return web.Response(status=status, body=body, headers=headers)


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeNode, str]]:
    node = FakeNode()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", node.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield node, f"http://127.0.0.1:{port}"
    finally:
        node.release.set()
        await runner.cleanup()


def _client(url: str, history: History) -> Client:
    return Client(0, 4, "n1", url, history=history, rng=random.Random(0), timeout=0.5)


def test_classify_follows_the_api_contract() -> None:
    assert classify(200, "put") == (OK, None)
    assert classify(404, "get") == (OK, None)
    assert classify(409, "cas") == (FAIL, "compare_failed")
    assert classify(503, "put") == (FAIL, "503")
    assert classify(504, "put") == (UNKNOWN, "504")
    assert classify(500, "cas") == (UNKNOWN, "500")
    assert classify(404, "put") == (UNKNOWN, "404")


async def test_get_put_and_both_cas_forms(fake: tuple[FakeNode, str]) -> None:
    node, url = fake
    history = History()
    rev = {"X-Raftpod-Revision": "7"}
    node.script = [
        (404, b"", {}),  # get: absent
        (200, b'{"revision": 1}', {}),  # put
        (200, b"c0-1", rev),  # cas read
        (409, b'{"error": "compare_failed"}', {}),  # cas via prev_revision
        (200, b"c0-1", rev),  # cas read
        (200, b'{"succeeded": false}', {}),  # cas via txn: compare false
        (404, b"", {}),  # cas read: absent
        (200, b'{"succeeded": true}', {}),  # cas via txn on an absent key
    ]
    async with _client(url, history) as client:
        await client.get("k")
        await client.put("k")
        await client.cas("k", use_txn=False)
        await client.cas("k", use_txn=True)
        await client.cas("k", use_txn=True)
    assert node.seen == [
        "GET /v1/kv/k?consistency=linearizable", "PUT /v1/kv/k",
        "GET /v1/kv/k?consistency=linearizable", "PUT /v1/kv/k?prev_revision=7",
        "GET /v1/kv/k?consistency=linearizable", "POST /v1/txn",
        "GET /v1/kv/k?consistency=linearizable", "POST /v1/txn",
    ]  # fmt: skip
    summary = [(op.op, op.status, op.output, op.expected, op.error) for op in history.ops]
    assert summary == [
        ("get", OK, {"value": None}, None, None),
        ("put", OK, None, None, None),
        ("get", OK, {"value": "c0-1"}, None, None),
        ("cas", FAIL, None, "c0-1", "compare_failed"),
        ("get", OK, {"value": "c0-1"}, None, None),
        ("cas", FAIL, None, "c0-1", "compare_failed"),
        ("get", OK, {"value": None}, None, None),
        ("cas", OK, None, None, None),
    ]
    writes = [op for op in history.ops if op.op != "get"]
    values = [op.value or op.new for op in writes]
    assert len(set(values)) == len(values) == 4
    assert node.request_ids == [op.request_id for op in writes]
    assert all(op.request_id in (None, op.value or op.new) for op in writes)
    assert all(op.ret is not None and op.ret >= op.call for op in history.ops)
    assert {op.process for op in history.ops} == {0}


async def test_unknown_outcomes_start_a_new_process(fake: tuple[FakeNode, str]) -> None:
    node, url = fake
    history = History()
    node.script = [(504, b'{"error": "timeout"}', {}), None, (503, b"{}", {})]
    async with _client(url, history) as client:
        await client.put("k")
        await client.put("k")  # no answer: the client times out
        await client.put("k")
    assert [(op.status, op.process) for op in history.ops] == [
        (UNKNOWN, 0),
        (UNKNOWN, 4),
        (FAIL, 8),
    ]


async def test_refused_connection_is_a_definite_failure() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused
        history = History()
        async with _client(f"http://127.0.0.1:{port}", history) as client:
            await client.put("k")
            _, revision = await client.get("k")
        assert revision is None
        assert len(history.ops) == 2
        assert all(o.status == FAIL and (o.error or "").startswith("connect:") for o in history.ops)
        assert client.refused


async def test_a_write_the_node_died_with_is_unknown_not_failed() -> None:
    """The node reads our PUT, stops listening and drops the connection: aiohttp resends
    the PUT by itself and that is refused, yet the first one may have been applied."""
    requests: list[bytes] = []

    async def die(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        requests.append(await reader.readuntil(b"\r\n\r\n"))
        server.close()  # later connections are refused
        writer.transport.abort()

    server = await asyncio.start_server(die, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    history = History()
    async with _client(f"http://127.0.0.1:{port}", history) as client:
        op = await client.put("k")
    await server.wait_closed()
    assert len(requests) == 1 and client.sent >= 1
    assert (f"X-Request-Id: {op.value}".encode() in requests[0]) == (op.request_id == op.value)
    assert (op.status, op.process) == (UNKNOWN, 0)
    assert client.process == 4
