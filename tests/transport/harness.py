"""Shared pieces for transport tests: an inbox that can be awaited, and node factories."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

from raftpod_sidecar.raft.messages import Entry, Message, MessageType
from raftpod_sidecar.transport.peers import PeerTransport, TransportOptions
from raftpod_sidecar.transport.tls import TlsContexts

FAST = TransportOptions(backoff_initial=0.02, backoff_max=0.2, handshake_timeout=2.0)


class Inbox:
    """Collects delivered messages and unreachable reports; waits with a deadline."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.frames = 0
        self.unreachable: list[str] = []
        self._changed = asyncio.Event()

    def on_messages(self, messages: list[Message]) -> None:
        self.frames += 1
        self.messages.extend(messages)
        self._changed.set()

    def on_unreachable(self, peer: str) -> None:
        self.unreachable.append(peer)
        self._changed.set()

    async def until(self, predicate: Callable[[], bool], within: float = 10.0) -> None:
        """Return once ``predicate()`` holds; fail the test after ``within`` seconds."""
        async with asyncio.timeout(within):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()


async def poll(predicate: Callable[[], bool], within: float = 10.0) -> None:
    """Wait for a condition no callback announces (counters), checking every 10 ms."""
    for _ in range(int(within * 100)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"condition still false after {within}s")


async def start_node(
    node_id: str,
    inbox: Inbox,
    *,
    tls: TlsContexts | None = None,
    port: int = 0,
    options: TransportOptions = FAST,
    cluster_id: str = "",
) -> PeerTransport:
    t = PeerTransport(
        node_id,
        f"127.0.0.1:{port}",
        inbox.on_messages,
        on_unreachable=inbox.on_unreachable,
        tls=tls,
        cluster_id=cluster_id,
        rng=random.Random(node_id),
        options=options,
    )
    await t.start()
    return t


def addr(t: PeerTransport) -> str:
    return f"127.0.0.1:{t.port}"


def app(frm: str, to: str, index: int, data: bytes = b"x" * 100) -> Message:
    """An APP message carrying one entry whose index tags it (to check order)."""
    return Message(
        MessageType.APP, to, frm, term=1, index=index, entries=(Entry(1, index + 1, data=data),)
    )
