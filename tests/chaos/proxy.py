"""A fault-injecting TCP proxy for peer links, run inside the test's event loop.

raftpod nodes send Raft messages one way per connection (each node dials every
peer for its own outgoing messages), so a *link* ``src -> dst`` is one listening
port on 127.0.0.1 that forwards what ``src`` dials to ``dst``'s real peer
port; giving every node ``--peers`` entries that point at its own links routes
all peer traffic through here. Each link is in one of three modes:

- ``PASS``: bytes flow both ways.
- ``DROP`` (blackhole): connections are accepted (new ones too) but nothing is
  read or forwarded, so data waits in socket buffers like unacknowledged TCP
  segments; on heal it is delivered late, as after a real transient partition.
- ``RESET``: every open connection is aborted with a TCP RST and new ones are
  reset right after accept.

A partition is the set of links that are not ``PASS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import socket
import struct
from collections.abc import Iterable

CHUNK = 64 * 1024
Link = tuple[str, str]
"""A directed link ``(src, dst)``: what ``src`` sends to ``dst``."""


class Mode(enum.Enum):
    PASS = "pass"
    DROP = "drop"
    RESET = "reset"


def abort_with_rst(writer: asyncio.StreamWriter) -> None:
    """Close at once with RST (SO_LINGER 0) instead of a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class _Connection:
    """One dialed connection through a link: two pumps that wait while the link is cut."""

    def __init__(self, link: ProxyLink, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.link = link
        self.client = (reader, writer)
        self.upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def run(self) -> None:
        try:
            await self.link.passable()
            try:
                if self.link.upstream_port is None:
                    raise ConnectionRefusedError("the link is not routed yet")
                self.upstream = await asyncio.open_connection("127.0.0.1", self.link.upstream_port)
            except OSError:
                abort_with_rst(self.client[1])  # the destination is down: like a refusal
                return
            async with asyncio.TaskGroup() as pumps:
                pumps.create_task(self._pump(self.client[0], self.upstream[1]))
                pumps.create_task(self._pump(self.upstream[0], self.client[1]))
        except* OSError:
            pass  # a side went away: the other one sees a close
        finally:
            self.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await self.link.passable()
            data = await reader.read(CHUNK)
            if not data:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            await self.link.passable()  # cut while reading: hold the bytes until heal
            writer.write(data)
            await writer.drain()
            self.link.bytes_forwarded += len(data)

    def reset(self) -> None:
        for _, writer in [self.client, *([self.upstream] if self.upstream else [])]:
            abort_with_rst(writer)

    def close(self) -> None:
        for _, writer in [self.client, *([self.upstream] if self.upstream else [])]:
            writer.close()


class ProxyLink:
    """One directed link with its own listening port."""

    def __init__(self, src: str, dst: str, upstream_port: int | None) -> None:
        self.src = src
        self.dst = dst
        self.upstream_port = upstream_port
        self.mode = Mode.PASS
        self.bytes_forwarded = 0
        self._open = asyncio.Event()
        self._open.set()
        self._server: asyncio.Server | None = None
        self._tasks: dict[asyncio.Task[None], _Connection] = {}

    @property
    def port(self) -> int:
        assert self._server is not None, "link not started"
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)

    async def passable(self) -> None:
        await self._open.wait()

    def set_mode(self, mode: Mode) -> None:
        self.mode = mode
        if mode == Mode.PASS:
            self._open.set()
            return
        self._open.clear()
        if mode == Mode.RESET:
            for task, conn in list(self._tasks.items()):
                conn.reset()
                task.cancel()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == Mode.RESET:
            abort_with_rst(writer)
            return
        conn = _Connection(self, reader, writer)
        task = asyncio.current_task()
        assert task is not None
        self._tasks[task] = conn
        try:
            await conn.run()
        finally:
            del self._tasks[task]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task, conn in list(self._tasks.items()):
            conn.close()
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()


class Network:
    """Every proxied link between the nodes, and the partition currently applied."""

    def __init__(self) -> None:
        self.links: dict[Link, ProxyLink] = {}

    async def add(self, src: str, dst: str, upstream_port: int | None = None) -> ProxyLink:
        link = ProxyLink(src, dst, upstream_port)
        await link.start()
        self.links[(src, dst)] = link
        return link

    async def full_mesh(self, nodes: Iterable[str]) -> None:
        """A link for every ordered pair of distinct nodes, not routed yet: create them
        before the nodes pick their ports, so no ephemeral port is handed out twice."""
        ids = list(nodes)
        for src in ids:
            for dst in ids:
                if src != dst:
                    await self.add(src, dst)

    def route(self, peer_ports: dict[str, int]) -> None:
        """Point every link at its destination's real peer port."""
        for (_, dst), link in self.links.items():
            link.upstream_port = peer_ports[dst]

    def peers_flag(self, node: str, own_address: str) -> str:
        """``--peers`` for ``node``: itself directly, every other node through its link."""
        entries = [f"{node}={own_address}"]
        entries += [f"{d}={link.address}" for (s, d), link in self.links.items() if s == node]
        return ",".join(sorted(entries))

    def cut(self, links: Iterable[Link], mode: Mode = Mode.DROP) -> None:
        """Heal everything, then cut exactly ``links``."""
        chosen = set(links)
        unknown = chosen - self.links.keys()
        assert not unknown, f"no such links: {sorted(unknown)}"
        for key, link in self.links.items():
            link.set_mode(mode if key in chosen else Mode.PASS)

    def heal(self) -> None:
        self.cut(())

    def cut_links(self) -> set[Link]:
        return {key for key, link in self.links.items() if link.mode != Mode.PASS}

    async def close(self) -> None:
        for link in self.links.values():
            await link.close()
