"""The peer transport: one listener for inbound messages, one sender per peer.

Each node dials every peer for *its own* outgoing messages and accepts
connections on which peers send theirs, so every connection carries frames one
way (after the hello exchange) and per-connection order is TCP order.

``send()`` never blocks: it encodes each message and, when the peer's
connection is up, idle and nothing waits in its queue, writes the call's
messages for that peer at once as one frame (saving the sender task a wake-up
per hop, which is most of a hop's latency here); otherwise it appends them to
the peer's bounded queue, and the peer's sender task drains everything queued
into one frame (up to ``max_batch_bytes``; a larger single message, e.g. a
snapshot chunk, goes alone). A heartbeat replaces one still waiting in the
queue: the newer says all the older did (a commit index; the newest read
context, whose acknowledgement releases every earlier read; a later send tick),
whereas a backlog of heartbeats replayed to a restarted peer draws as many
answers, each of which makes the leader re-send everything that peer lacks.
When a queue is full the oldest non-snapshot messages are dropped and counted:
Raft tolerates loss, and the core learns about trouble
through ``on_unreachable(peer_id)``, called whenever a dial fails or a
connection breaks. Senders redial with jittered exponential backoff, and a
sender task ends only when cancelled: a broken connection surfaces as
``OSError`` under asyncio but as ``RuntimeError`` under uvloop (which refuses
writes on a closed transport), and any failure costs that connection only.

Anything malformed, oversized or unauthenticated on an inbound connection
closes that connection only and is counted in ``TransportCounters``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import socket
from collections import deque
from collections.abc import Callable, Sequence
from typing import NamedTuple

from raftpod_sidecar.raft.messages import Message, MessageType
from raftpod_sidecar.transport.codec import (
    PeerProtocolError,
    decode_batch,
    encode_message,
    join_encoded,
)
from raftpod_sidecar.transport.frames import (
    DEFAULT_MAX_FRAME_BYTES,
    HEADER,
    OversizedFrameError,
    read_frame,
    write_frame,
)
from raftpod_sidecar.transport.handshake import (
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
from raftpod_sidecar.transport.tls import TlsContexts, cert_names_node

log = logging.getLogger(__name__)

MAX_HELLO_BYTES = 4096
_CONNECTION_BROKEN = (OSError, EOFError, TimeoutError, RuntimeError)
"""What a write, drain or read on a dead connection raises (RuntimeError: uvloop)."""
_BATCH_HEADER_BYTES = 5  # the largest msgpack array header


@dataclasses.dataclass
class TransportCounters:
    """Plain int counters the node exports as metrics."""

    frames_in: int = 0
    frames_out: int = 0
    messages_in: int = 0
    messages_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    connections_accepted: int = 0
    malformed: int = 0
    oversized: int = 0
    handshake_failures: int = 0
    dial_failures: int = 0
    reconnects: int = 0
    dropped_full_queue: int = 0
    superseded_heartbeats: int = 0
    dropped_unknown_peer: int = 0
    dropped_too_large: int = 0

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


class TransportOptions(NamedTuple):
    """Limits and timings; the defaults suit a LAN cluster ticking every 10 ms."""

    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    max_batch_bytes: int = 256 << 10  # bounds the receiver's decode stall per frame
    max_queue_messages: int = 4096
    max_queue_bytes: int = 64 << 20
    backoff_initial: float = 0.05
    backoff_max: float = 2.0
    connect_timeout: float = 3.0
    handshake_timeout: float = 3.0
    write_timeout: float = 10.0
    """A peer that accepts no bytes for this long counts as unreachable (connection dropped)."""


DEFAULT_OPTIONS = TransportOptions()


def split_hostport(address: str) -> tuple[str, int]:
    """``"host:port"`` or ``"[v6]:port"`` → (host, port); ValueError if it is neither."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"address {address!r} is not host:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def _set_nodelay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _consume_result(task: asyncio.Task[bytes]) -> None:
    """Mark a background read's outcome as seen (a reset socket is expected, not an error)."""
    if not task.cancelled():
        task.exception()


async def _close(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(Exception):  # an already broken transport may refuse
        writer.close()
    with contextlib.suppress(Exception):
        async with asyncio.timeout(1.0):
            await writer.wait_closed()


class PeerTransport:
    """Peer RPC for one node: ``start``, ``update_peers``, ``send``, ``stop``.

    ``on_messages`` receives each inbound frame's validated messages (all from
    the authenticated peer, addressed to this node); ``on_unreachable`` gets a
    peer id when a dial fails or a connection to it breaks. Both are called on
    the event loop and must not block.
    """

    def __init__(
        self,
        node_id: str,
        listen_addr: str,
        on_messages: Callable[[list[Message]], None],
        *,
        on_unreachable: Callable[[str], None] | None = None,
        tls: TlsContexts | None = None,
        cluster_id: str = "",
        rng: random.Random | None = None,
        options: TransportOptions = DEFAULT_OPTIONS,
    ) -> None:
        self.node_id = node_id
        self.listen_addr = listen_addr
        self.cluster_id = cluster_id
        self.tls = tls
        self.options = options
        self.counters = TransportCounters()
        self.rng = rng if rng is not None else random.Random()
        self._on_messages = on_messages
        self._on_unreachable = on_unreachable
        self._senders: dict[str, _PeerSender] = {}
        self._listener: socket.socket | None = None
        self._acceptor: asyncio.Task[None] | None = None
        self._inbound: set[asyncio.Task[None]] = set()
        self.port = 0

    async def start(self) -> None:
        """Listen on ``listen_addr`` (port 0 picks one; see ``port``)."""
        host, port = split_hostport(self.listen_addr)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._listener = socket.create_server((host, port), family=family, backlog=128)
        self._listener.setblocking(False)
        self.port = self._listener.getsockname()[1]
        self._acceptor = asyncio.create_task(self._accept_loop(self._listener))

    async def stop(self) -> None:
        """Close the listener, every inbound connection and every sender."""
        if self._acceptor is not None:
            self._acceptor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._acceptor
            self._acceptor = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        for sender in list(self._senders.values()):
            await sender.close()
        self._senders.clear()
        tasks = list(self._inbound)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)

    def update_peers(self, peers: dict[str, str]) -> None:
        """Make the set of peers dialed exactly ``peers`` ({id: "host:port"}; self ignored).

        Raises ValueError (changing nothing) if an address is not host:port.
        """
        wanted = {pid: addr for pid, addr in peers.items() if pid != self.node_id}
        for addr in wanted.values():
            split_hostport(addr)
        for pid in list(self._senders):
            if pid not in wanted:
                sender = self._senders.pop(pid)
                sender.task.cancel()
        for pid, addr in wanted.items():
            existing = self._senders.get(pid)
            if existing is None:
                self._senders[pid] = _PeerSender(self, pid, addr)
            else:
                existing.set_address(addr)

    def send(self, messages: Sequence[Message]) -> None:
        """Write or queue messages for their ``to`` peers and return at once."""
        per_peer: dict[str, list[tuple[MessageType, bytes]]] = {}
        for msg in messages:
            per_peer.setdefault(msg.to, []).append((msg.type, encode_message(msg)))
        for peer_id, items in per_peer.items():
            sender = self._senders.get(peer_id)
            if sender is None:
                self.counters.dropped_unknown_peer += len(items)
                self.report_unreachable(peer_id)
            elif not sender.write_now(items):
                for kind, data in items:
                    sender.enqueue(kind, data)

    def queued(self, peer_id: str) -> int:
        """How many messages wait in ``peer_id``'s queue (0 if unknown)."""
        sender = self._senders.get(peer_id)
        return len(sender.queue) if sender is not None else 0

    def peer_version(self, peer_id: str) -> int:
        """The protocol version ``peer_id`` answered our last hello with (0: never reached)."""
        sender = self._senders.get(peer_id)
        return sender.version if sender is not None else 0

    def connected_peers(self) -> list[str]:
        """Peers with an established outgoing connection right now (for status pages)."""
        return sorted(pid for pid, sender in self._senders.items() if sender.connected)

    def report_unreachable(self, peer_id: str) -> None:
        if self._on_unreachable is None:
            return
        try:
            self._on_unreachable(peer_id)
        except Exception:
            log.exception("on_unreachable callback failed for %s", peer_id)

    # inbound side

    async def _accept_loop(self, listener: socket.socket) -> None:
        """Accept raw sockets ourselves: nothing is read before TLS is layered on, and a
        fresh server context is used per connection (certificate rotation)."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                sock, _ = await loop.sock_accept(listener)
            except OSError as exc:  # e.g. EMFILE: keep serving once descriptors free up
                log.warning("accept failed: %r", exc)
                await asyncio.sleep(0.1)
                continue
            task = asyncio.create_task(self._accept(sock))
            self._inbound.add(task)
            task.add_done_callback(self._inbound.discard)

    async def _accept(self, sock: socket.socket) -> None:
        self.counters.connections_accepted += 1
        writer: asyncio.StreamWriter | None = None
        try:
            async with asyncio.timeout(self.options.handshake_timeout):
                reader, writer = await self._open_streams(sock)
            await self._serve(reader, writer)
        except (OSError, TimeoutError) as exc:  # TLS refused (bad CA, plain TCP...) or too slow
            self.counters.handshake_failures += 1
            log.warning("closing peer connection before its hello: %r", exc)
        finally:
            if writer is not None:
                await _close(writer)  # the transport owns the socket now
            else:
                sock.close()

    async def _open_streams(
        self, sock: socket.socket
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Streams over an accepted socket, TLS first when configured."""
        loop = asyncio.get_running_loop()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = asyncio.StreamReader()
        protocol = asyncio.StreamReaderProtocol(reader)
        ctx = self.tls.server_context() if self.tls is not None else None
        transport, _ = await loop.connect_accepted_socket(
            lambda: protocol,
            sock,
            ssl=ctx,
            ssl_handshake_timeout=self.options.handshake_timeout if ctx is not None else None,
        )
        return reader, asyncio.StreamWriter(transport, protocol, reader, loop)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        c = self.counters
        peer = ""
        try:
            async with asyncio.timeout(self.options.handshake_timeout):
                peer = await self._handshake(reader, writer)
            if not peer:
                c.handshake_failures += 1
                return
            sender = self._senders.get(peer)
            if sender is not None:
                sender.peer_is_back()
            max_bytes = self.options.max_frame_bytes
            while True:
                payload = await read_frame(reader, max_bytes)
                if payload is None:
                    return
                messages = decode_batch(payload)
                for m in messages:
                    if m.frm != peer or m.to != self.node_id:
                        raise PeerProtocolError(f"message {m.frm}->{m.to} on {peer}'s connection")
                c.frames_in += 1
                c.messages_in += len(messages)
                c.bytes_in += len(payload) + HEADER.size
                try:
                    self._on_messages(messages)
                except Exception:
                    log.exception("on_messages callback failed")
        except OversizedFrameError as exc:
            c.oversized += 1
            log.warning("closing peer connection from %r: %s", peer or "?", exc)
        except PeerProtocolError as exc:
            if peer:
                c.malformed += 1
            else:
                c.handshake_failures += 1
            log.warning("closing peer connection from %r: %s", peer or "?", exc)
        except _CONNECTION_BROKEN as exc:
            if not peer:
                c.handshake_failures += 1
            log.info("peer connection from %r ended: %r", peer or "?", exc)

    async def _handshake(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> str:
        """The authenticated peer id, or "" after refusing the dialer (reason sent back)."""
        payload = await read_frame(reader, MAX_HELLO_BYTES)
        if payload is None:
            raise PeerProtocolError("connection closed before the hello")
        hello = decode_hello(payload)
        reason = check_hello(hello, self.node_id, self.cluster_id)
        peercert = writer.get_extra_info("peercert")
        if not reason and self.tls is not None and not cert_names_node(peercert, hello.from_id):
            reason = f"certificate does not name node {hello.from_id!r}"
        write_frame(writer, encode_reply(HelloReply(PROTOCOL_VERSION, not reason, reason)))
        await writer.drain()
        if reason:
            log.warning("refused peer hello from %r: %s", hello.from_id, reason)
            return ""
        return hello.from_id


class _PeerSender:
    """The queue and the dialing/sending task for one peer."""

    def __init__(self, transport: PeerTransport, peer_id: str, address: str) -> None:
        self.t = transport
        self.peer_id = peer_id
        self.address = address
        self.queue: deque[tuple[MessageType, bytes]] = deque()
        self.queued_bytes = 0
        self._wakeup = asyncio.Event()
        self._redial = False
        self._peer_back = False  # it dialed us: redial now, not after the backoff
        self._lost = False
        self.connected = False
        self.version = 0  # the peer's protocol version, from its last hello reply
        self._writer: asyncio.StreamWriter | None = None  # while a pump runs
        self.task = asyncio.create_task(self._run(), name=f"raftpod-peer-{peer_id}")
        self.task.add_done_callback(self._log_crash)

    def _log_crash(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("sender for %s died", self.peer_id, exc_info=task.exception())

    def set_address(self, address: str) -> None:
        if address != self.address:
            self.address = address
            self._redial = True
            self._wakeup.set()

    def peer_is_back(self) -> None:
        """The peer just dialed us, so it is up: a backoff waiting to redial it ends now.

        A restarted follower would otherwise wait up to ``backoff_max`` for the
        leader's next dial before it hears from the leader and catches up.
        """
        if not self.connected:
            self._peer_back = True
            self._wakeup.set()

    async def close(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    def enqueue(self, kind: MessageType, data: bytes) -> None:
        opts = self.t.options
        size = len(data)
        if size + _BATCH_HEADER_BYTES > opts.max_frame_bytes:
            self.t.counters.dropped_too_large += 1
            return
        if kind == MessageType.HEARTBEAT:
            self._drop_waiting_heartbeat()
        while self.queue and (
            len(self.queue) >= opts.max_queue_messages
            or self.queued_bytes + size > opts.max_queue_bytes
        ):
            self._drop_oldest()
        self.queue.append((kind, data))
        self.queued_bytes += size
        self._wakeup.set()

    def write_now(self, items: list[tuple[MessageType, bytes]]) -> bool:
        """Write ``items`` as one frame if the link is up and idle; False: queue them."""
        writer = self._writer
        if writer is None or self.queue or self._lost or self._redial or writer.is_closing():
            return False
        if writer.transport.get_write_buffer_size() or any(
            kind == MessageType.SNAP for kind, _ in items
        ):
            return False  # the pump is draining, or a snapshot chunk: keep order via the queue
        size = sum(len(data) for _, data in items)
        if size > self.t.options.max_batch_bytes:
            return False
        try:
            self._write_batch(writer, [data for _, data in items])
        except _CONNECTION_BROKEN:
            return False  # nothing was written; the pump notices the broken link
        return True

    def _write_batch(self, writer: asyncio.StreamWriter, batch: list[bytes]) -> None:
        """Write encoded messages as one frame and count it (the caller drains)."""
        payload = join_encoded(batch)
        write_frame(writer, payload)
        c = self.t.counters
        c.frames_out += 1
        c.messages_out += len(batch)
        c.bytes_out += len(payload) + HEADER.size

    def _drop_oldest(self) -> None:
        """Drop the oldest non-snapshot message (the oldest of all if only snapshots wait)."""
        victim = next((i for i, (k, _) in enumerate(self.queue) if k != MessageType.SNAP), 0)
        self._drop_at(victim)
        self.t.counters.dropped_full_queue += 1

    def _drop_waiting_heartbeat(self) -> None:
        """Drop the heartbeat waiting in the queue, if any (there is at most one)."""
        for i, (kind, _) in enumerate(self.queue):
            if kind == MessageType.HEARTBEAT:
                self._drop_at(i)
                self.t.counters.superseded_heartbeats += 1
                return

    def _drop_at(self, i: int) -> None:
        _, data = self.queue[i]
        del self.queue[i]
        self.queued_bytes -= len(data)

    def _take_batch(self) -> list[bytes]:
        limit = self.t.options.max_batch_bytes
        out: list[bytes] = []
        size = 0
        queue = self.queue
        while queue:
            data = queue[0][1]
            if out and size + len(data) > limit:
                break
            queue.popleft()
            out.append(data)
            size += len(data)
        self.queued_bytes -= size
        return out

    async def _run(self) -> None:
        """Dial, send until the connection breaks, back off, redial; only cancellation ends it."""
        attempt = 0
        while True:
            self._redial = self._peer_back = False
            conn = await self._dial()
            if conn is None:
                self.t.counters.dial_failures += 1
                self.t.report_unreachable(self.peer_id)
                attempt += 1
            else:
                attempt = 1
                reader, writer = conn
                self.connected = True
                try:
                    await self._pump(reader, writer)
                except Exception as exc:  # whatever broke, the link must be redialed
                    expected = isinstance(exc, _CONNECTION_BROKEN)
                    log.log(
                        logging.INFO if expected else logging.ERROR,
                        "connection to %s lost: %r",
                        self.peer_id,
                        exc,
                        exc_info=not expected,
                    )
                finally:
                    self.connected = False
                    await _close(writer)
                if not self._redial:
                    self.t.report_unreachable(self.peer_id)
            if not self._redial:
                await self._backoff(attempt)
            self.t.counters.reconnects += 1

    async def _backoff(self, attempt: int) -> None:
        opts = self.t.options
        delay = min(opts.backoff_max, opts.backoff_initial * 2 ** min(attempt - 1, 30))
        delay *= 0.5 + 0.5 * self.t.rng.random()
        self._wakeup.clear()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + delay
        # Messages arriving meanwhile only queue; an address change, or the peer
        # dialing us, cuts the wait short.
        while not self._redial and not self._peer_back and (left := deadline - loop.time()) > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await self._wakeup.wait()
            self._wakeup.clear()

    async def _dial(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        t = self.t
        writer: asyncio.StreamWriter | None = None
        try:
            host, port = split_hostport(self.address)
            ctx = t.tls.client_context() if t.tls is not None else None
            async with asyncio.timeout(t.options.connect_timeout + t.options.handshake_timeout):
                reader, writer = await asyncio.open_connection(
                    host, port, ssl=ctx, server_hostname="" if ctx is not None else None
                )
                _set_nodelay(writer)
                if t.tls is not None and not cert_names_node(
                    writer.get_extra_info("peercert"), self.peer_id
                ):
                    raise PeerProtocolError(f"certificate at {self.address} does not name it")
                hello = Hello(HELLO_VERSION, t.cluster_id, t.node_id, self.peer_id)
                write_frame(writer, encode_hello(hello))
                await writer.drain()
                payload = await read_frame(reader, MAX_HELLO_BYTES)
                if payload is None:
                    raise PeerProtocolError("closed before replying to the hello")
                reply = decode_reply(payload)
                if not reply.accepted:
                    raise PeerProtocolError(f"refused: {reply.reason}")
            self.version = reply.version
            return reader, writer
        except Exception as exc:  # any failure to dial must lead to a retry, never a dead link
            expected = isinstance(exc, (*_CONNECTION_BROKEN, ValueError, PeerProtocolError))
            log.log(
                logging.INFO if expected else logging.ERROR,
                "dial %s at %s failed: %r",
                self.peer_id,
                self.address,
                exc,
                exc_info=not expected,
            )
            if writer is not None:
                await _close(writer)
            return None

    def _on_eof(self, _: asyncio.Task[bytes]) -> None:
        """The listener never writes after its reply: any read result means the end."""
        self._lost = True
        self._wakeup.set()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        write_timeout = self.t.options.write_timeout
        self._lost = False
        watcher = asyncio.create_task(reader.read(1))
        watcher.add_done_callback(_consume_result)
        watcher.add_done_callback(self._on_eof)
        self._writer = writer
        try:
            while True:
                while not self.queue and not self._lost and not self._redial:
                    self._wakeup.clear()
                    await self._wakeup.wait()
                # A transport the loop already closed (the peer reset it) is noticed
                # before the watcher's callback runs: keep the batch for the next one.
                if self._lost or self._redial or writer.is_closing():
                    return
                self._write_batch(writer, self._take_batch())
                async with asyncio.timeout(write_timeout):
                    await writer.drain()
        finally:
            self._writer = None
            watcher.remove_done_callback(self._on_eof)  # a late call must not hit the next pump
            watcher.cancel()
