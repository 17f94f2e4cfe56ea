"""PeerTransport over real loopback sockets: delivery, order, batching, reconnects, queues."""

from __future__ import annotations

import asyncio

import pytest

from raftpod_sidecar.raft.messages import Message, MessageType, Snapshot
from raftpod_sidecar.transport.frames import frame_header, read_frame
from raftpod_sidecar.transport.handshake import PROTOCOL_VERSION, HelloReply, encode_reply
from raftpod_sidecar.transport.peers import PeerTransport, TransportOptions

from .harness import FAST, Inbox, addr, app, poll, start_node


async def _mesh(ids: list[str]) -> tuple[dict[str, PeerTransport], dict[str, Inbox]]:
    inboxes = {i: Inbox() for i in ids}
    nodes = {i: await start_node(i, inboxes[i]) for i in ids}
    peers = {i: addr(t) for i, t in nodes.items()}
    for t in nodes.values():
        t.update_peers(peers)
    return nodes, inboxes


async def _stop(nodes: dict[str, PeerTransport]) -> None:
    for t in nodes.values():
        await t.stop()


async def test_three_nodes_exchange_in_order() -> None:
    ids = ["n1", "n2", "n3"]
    nodes, inboxes = await _mesh(ids)
    try:
        per_link = 300
        for k in range(per_link):
            for src in ids:
                nodes[src].send([app(src, dst, k) for dst in ids if dst != src])
        for dst in ids:
            await inboxes[dst].until(lambda d=dst: len(inboxes[d].messages) == 2 * per_link)
            for src in ids:
                if src != dst:
                    got = [m.index for m in inboxes[dst].messages if m.frm == src]
                    assert got == list(range(per_link))
            assert all(m.to == dst for m in inboxes[dst].messages)
        c = nodes["n1"].counters
        assert c.messages_out == 2 * per_link and c.messages_in == 2 * per_link
        assert c.malformed == c.handshake_failures == c.dropped_full_queue == 0
    finally:
        await _stop(nodes)


async def test_burst_is_batched_into_fewer_frames() -> None:
    nodes, inboxes = await _mesh(["a", "b"])
    try:
        await poll(lambda: nodes["b"].counters.connections_accepted == 1)
        burst = [app("a", "b", k) for k in range(2000)]
        nodes["a"].send(burst)
        await inboxes["b"].until(lambda: len(inboxes["b"].messages) == len(burst))
        assert [m.index for m in inboxes["b"].messages] == list(range(len(burst)))
        frames = nodes["a"].counters.frames_out
        assert frames == nodes["b"].counters.frames_in == inboxes["b"].frames
        assert frames < len(burst) // 10
    finally:
        await _stop(nodes)


async def test_idle_link_writes_at_once_and_mixed_sends_keep_order() -> None:
    nodes, inboxes = await _mesh(["a", "b"])
    try:
        await poll(lambda: "b" in nodes["a"].connected_peers())
        before = nodes["a"].counters.frames_out
        nodes["a"].send([app("a", "b", 0), app("a", "b", 1)])
        # written inside send(), as one frame: no sender-task wake-up on an idle link
        assert nodes["a"].counters.frames_out == before + 1
        assert nodes["a"].queued("b") == 0
        for k in range(2, 600):
            nodes["a"].send([app("a", "b", k)])
            if k % 7 == 0:
                await asyncio.sleep(0)  # let the pump and the socket interleave with sends
        await inboxes["b"].until(lambda: len(inboxes["b"].messages) == 600)
        assert [m.index for m in inboxes["b"].messages] == list(range(600))
    finally:
        await _stop(nodes)


async def test_peer_restart_reconnects_and_reports_unreachable() -> None:
    nodes, inboxes = await _mesh(["a", "b"])
    port_b = nodes["b"].port
    try:
        nodes["a"].send([app("a", "b", 0)])
        await inboxes["b"].until(lambda: len(inboxes["b"].messages) == 1)
        assert nodes["a"].connected_peers() == ["b"]
        await nodes["b"].stop()
        await inboxes["a"].until(lambda: "b" in inboxes["a"].unreachable)
        assert nodes["a"].connected_peers() == []
        # Messages sent while b is down wait in the queue (bounded) and arrive after it returns.
        nodes["a"].send([app("a", "b", 1)])
        reborn = Inbox()
        nodes["b"] = await start_node("b", reborn, port=port_b)
        nodes["a"].send([app("a", "b", 2)])
        await reborn.until(lambda: [m.index for m in reborn.messages] == [1, 2])
        assert nodes["a"].counters.reconnects >= 1
    finally:
        await _stop(nodes)


async def test_a_peer_that_dials_in_ends_the_backoff_to_it() -> None:
    slow = TransportOptions(backoff_initial=30.0, backoff_max=30.0, handshake_timeout=2.0)
    nodes, inboxes = await _mesh(["a", "b"])
    port_b = nodes["b"].port
    await nodes["b"].stop()
    await nodes["a"].stop()
    a = nodes["a"] = await start_node("a", inboxes["a"], options=slow)
    try:
        a.update_peers({"b": f"127.0.0.1:{port_b}"})
        a.send([app("a", "b", 1)])
        await poll(lambda: a.counters.dial_failures >= 1)  # now waiting 15-30 s to redial
        reborn = Inbox()
        nodes["b"] = await start_node("b", reborn, port=port_b)
        nodes["b"].update_peers({"a": addr(a)})
        nodes["b"].send([app("b", "a", 0)])
        await inboxes["a"].until(lambda: len(inboxes["a"].messages) == 1)
        await reborn.until(lambda: [m.index for m in reborn.messages] == [1], within=5.0)
    finally:
        await _stop(nodes)


async def test_full_queue_drops_oldest_but_keeps_snapshot_chunks() -> None:
    inbox_b = Inbox()
    b = await start_node("b", inbox_b)
    port_b = b.port
    await b.stop()  # the port is now closed: a's messages wait in its queue
    inbox_a = Inbox()
    opts = FAST._replace(max_queue_messages=10)
    a = await start_node("a", inbox_a, options=opts)
    reborn = Inbox()
    b2: PeerTransport | None = None
    try:
        a.update_peers({"b": f"127.0.0.1:{port_b}"})
        snap = Message(MessageType.SNAP, "b", "a", term=1, snapshot=Snapshot(data=b"chunk"))
        a.send([snap])
        a.send([app("a", "b", k) for k in range(15)])
        assert a.queued("b") == 10
        assert a.counters.dropped_full_queue == 6
        b2 = await start_node("b", reborn, port=port_b)
        await reborn.until(lambda: len(reborn.messages) == 10)
        assert reborn.messages[0] == snap
        assert [m.index for m in reborn.messages[1:]] == list(range(6, 15))
    finally:
        await a.stop()
        if b2 is not None:
            await b2.stop()


async def test_a_waiting_heartbeat_is_replaced_by_the_newer_one() -> None:
    b = await start_node("b", Inbox())
    port_b = b.port
    await b.stop()  # the port is now closed: a's messages wait in its queue
    a = await start_node("a", Inbox())
    reborn = Inbox()
    b2: PeerTransport | None = None
    try:
        a.update_peers({"b": f"127.0.0.1:{port_b}"})
        for k in range(1, 21):
            beat = Message(MessageType.HEARTBEAT, "b", "a", 1, commit=k, context=b"ri:%d" % k)
            a.send([beat])
            if k % 5 == 0:
                a.send([app("a", "b", k)])
        assert a.queued("b") == 5  # four entries and the newest heartbeat
        assert a.counters.superseded_heartbeats == 19
        b2 = await start_node("b", reborn, port=port_b)
        await reborn.until(lambda: len(reborn.messages) == 5)
        got = [(m.type, m.index, m.commit, m.context) for m in reborn.messages]
        assert got == [
            (MessageType.APP, 5, 0, b""),
            (MessageType.APP, 10, 0, b""),
            (MessageType.APP, 15, 0, b""),
            (MessageType.HEARTBEAT, 0, 20, b"ri:20"),
            (MessageType.APP, 20, 0, b""),
        ]
    finally:
        await a.stop()
        if b2 is not None:
            await b2.stop()


async def test_big_snapshot_chunk_goes_alone_and_is_not_dropped_by_batching() -> None:
    opts = FAST._replace(max_batch_bytes=4096)
    inbox_a, inbox_b = Inbox(), Inbox()
    a = await start_node("a", inbox_a, options=opts)
    b = await start_node("b", inbox_b, options=opts)
    try:
        await poll(lambda: True)
        chunk = Message(MessageType.SNAP, "b", "a", snapshot=Snapshot(data=b"s" * 100_000))
        a.update_peers({"b": addr(b)})
        a.send([app("a", "b", 0), chunk, app("a", "b", 1)])
        await inbox_b.until(lambda: len(inbox_b.messages) == 3)
        assert inbox_b.messages[1] == chunk
        assert a.counters.frames_out == 3
    finally:
        await a.stop()
        await b.stop()


async def test_unknown_and_too_large_messages_are_dropped_and_counted() -> None:
    inbox = Inbox()
    a = await start_node("a", inbox, options=FAST._replace(max_frame_bytes=1000))
    try:
        a.update_peers({"b": "127.0.0.1:1"})
        a.send([app("a", "zz", 0)])
        assert a.counters.dropped_unknown_peer == 1
        assert "zz" in inbox.unreachable
        a.send([app("a", "b", 0, data=b"x" * 2000)])
        assert a.counters.dropped_too_large == 1
        assert a.queued("b") == 0
    finally:
        await a.stop()


async def test_address_change_redials_the_new_address() -> None:
    inboxes = {i: Inbox() for i in ("a", "b", "b-new")}
    a = await start_node("a", inboxes["a"])
    old = await start_node("b", inboxes["b"])
    new = await start_node("b", inboxes["b-new"])
    try:
        a.update_peers({"b": addr(old)})
        a.send([app("a", "b", 0)])
        await inboxes["b"].until(lambda: len(inboxes["b"].messages) == 1)
        a.update_peers({"b": addr(new)})
        a.send([app("a", "b", 1)])
        await inboxes["b-new"].until(lambda: len(inboxes["b-new"].messages) >= 1)
        assert inboxes["b-new"].messages[-1].index == 1
        with pytest.raises(ValueError):
            a.update_peers({"b": addr(old), "c": "no-port"})
        assert a.queued("b") == 0 and a.connected_peers() == ["b"]
        a.update_peers({})
        assert a.connected_peers() == []
        a.send([app("a", "b", 2)])
        assert a.counters.dropped_unknown_peer == 1
    finally:
        for t in (a, old, new):
            await t.stop()


async def test_options_defaults_are_sane() -> None:
    opts = TransportOptions()
    assert opts.max_batch_bytes < opts.max_frame_bytes
    assert opts.max_frame_bytes >= 2 * (1 << 20)


async def test_peer_that_stops_reading_is_dropped_after_the_write_timeout() -> None:
    """A listener that completes the hello and then never reads stalls the sender's drain."""
    accepted = asyncio.Event()
    stalled: list[asyncio.StreamWriter] = []

    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_frame(reader, 4096)
        reply = encode_reply(HelloReply(PROTOCOL_VERSION, True, ""))
        writer.write(frame_header(len(reply)) + reply)
        await writer.drain()
        stalled.append(writer)
        accepted.set()

    server = await asyncio.start_server(stall, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    inbox = Inbox()
    a = await start_node("a", inbox, options=FAST._replace(write_timeout=0.3))
    try:
        a.update_peers({"b": f"127.0.0.1:{port}"})
        async with asyncio.timeout(10):
            await accepted.wait()
        big = b"z" * (512 << 10)
        a.send([app("a", "b", k, data=big) for k in range(64)])
        await inbox.until(lambda: "b" in inbox.unreachable)
        assert a.counters.frames_out >= 1
    finally:
        await a.stop()
        for w in stalled:
            w.transport.abort()
        server.close()
        await server.wait_closed()
