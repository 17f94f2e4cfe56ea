"""The wire codec: round trips for every peer message type, strict rejection of the rest."""

from __future__ import annotations

import asyncio
import contextlib

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raftpod_sidecar.raft.messages import (
    LOCAL_MESSAGES,
    ConfState,
    Entry,
    EntryType,
    Member,
    Message,
    MessageType,
    Snapshot,
    SnapshotMeta,
)
from raftpod_sidecar.transport.codec import (
    MAX_UINT,
    PeerProtocolError,
    array_header,
    decode_batch,
    decode_message,
    encode_batch,
    encode_message,
    join_encoded,
)
from raftpod_sidecar.transport.frames import OversizedFrameError, frame_header, read_frame
from raftpod_sidecar.transport.handshake import Hello, decode_hello, decode_reply, encode_hello

PEER_TYPES = [t for t in MessageType if t not in LOCAL_MESSAGES]

ids = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=12
)
uints = st.integers(min_value=0, max_value=MAX_UINT)
small = st.integers(min_value=0, max_value=1 << 40)
entries = st.builds(
    Entry,
    small,
    small,
    st.sampled_from(list(EntryType)),
    st.binary(max_size=64),
    st.one_of(st.just(""), ids),
    uints,
)
confs = st.builds(
    ConfState,
    st.lists(
        st.builds(Member, ids, st.text(max_size=20), st.booleans()),
        max_size=5,
        unique_by=lambda m: m.id,
    ).map(lambda ms: tuple(sorted(ms))),
)
snapshots = st.builds(
    Snapshot, st.builds(SnapshotMeta, small, small, confs), st.binary(max_size=200)
)


@st.composite
def messages(draw: st.DrawFn, mtype: st.SearchStrategy[MessageType] | None = None) -> Message:
    kind = draw(mtype if mtype is not None else st.sampled_from(PEER_TYPES))
    snap = draw(snapshots) if kind == MessageType.SNAP else draw(st.none() | snapshots)
    return Message(
        kind,
        draw(ids),
        draw(ids),
        draw(small),
        draw(small),
        draw(small),
        tuple(draw(st.lists(entries, max_size=4))),
        draw(uints),
        draw(st.booleans()),
        draw(small),
        draw(small),
        draw(st.binary(max_size=16)),
        snap,
        draw(small),
        draw(st.booleans()),
    )


def assert_typed(m: Message) -> None:
    assert type(m.type) is MessageType
    assert all(type(e) is Entry and type(e.type) is EntryType for e in m.entries)
    if m.snapshot is not None:
        assert type(m.snapshot) is Snapshot
        assert type(m.snapshot.meta) is SnapshotMeta
        assert type(m.snapshot.meta.conf) is ConfState
        assert all(type(x) is Member for x in m.snapshot.meta.conf.members)


@pytest.mark.parametrize("mtype", PEER_TYPES, ids=lambda t: t.name)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_every_peer_type_round_trips(mtype: MessageType, data: st.DataObject) -> None:
    msg = data.draw(messages(st.just(mtype)))
    back = decode_message(encode_message(msg))
    assert back == msg
    assert_typed(back)


@settings(max_examples=50, deadline=None)
@given(st.lists(messages(), min_size=1, max_size=20))
def test_batches_round_trip_both_ways_of_building(batch: list[Message]) -> None:
    assert decode_batch(encode_batch(batch)) == batch
    assert decode_batch(join_encoded([encode_message(m) for m in batch])) == batch


def test_array_headers_cover_every_msgpack_array_size_class() -> None:
    for n in (0, 1, 15, 16, 65535, 65536):
        assert msgpack.unpackb(array_header(n) + b"\xc0" * n) == [None] * n
    msg = Message(MessageType.HEARTBEAT, "b", "a", term=3)
    assert decode_batch(join_encoded([encode_message(msg)] * 17)) == [msg] * 17


def _only_protocol_errors(data: bytes) -> None:
    with contextlib.suppress(PeerProtocolError):
        decode_batch(data)
    with contextlib.suppress(PeerProtocolError):
        decode_message(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_only_raise_protocol_errors(data: bytes) -> None:
    _only_protocol_errors(data)


@settings(max_examples=100, deadline=None)
@given(st.lists(messages(), min_size=1, max_size=3), st.data())
def test_truncated_frames_are_rejected(batch: list[Message], data: st.DataObject) -> None:
    encoded = encode_batch(batch)
    cut = data.draw(st.integers(min_value=0, max_value=len(encoded) - 1))
    with pytest.raises(PeerProtocolError):
        decode_batch(encoded[:cut])


@settings(max_examples=300, deadline=None)
@given(messages(), st.data())
def test_mutated_frames_decode_validly_or_raise_protocol_errors(
    msg: Message, data: st.DataObject
) -> None:
    encoded = bytearray(encode_batch([msg]))
    for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
        pos = data.draw(st.integers(min_value=0, max_value=len(encoded) - 1))
        encoded[pos] = data.draw(st.integers(min_value=0, max_value=255))
    try:
        out = decode_batch(bytes(encoded))
    except PeerProtocolError:
        return
    for m in out:
        assert_typed(m)
        assert m.term >= 0 and m.index >= 0 and m.commit >= 0


GOOD = Message(
    MessageType.SNAP,
    "b",
    "a",
    term=2,
    snapshot=Snapshot(SnapshotMeta(5, 2, ConfState((Member("a", "h:1", True),))), b"s"),
)


def _tweak(field: int, value: object) -> bytes:
    arr = msgpack.unpackb(encode_message(GOOD))
    arr[field] = value
    return msgpack.packb(arr)  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(_tweak(0, int(MessageType.HUP)), id="local-type"),
        pytest.param(_tweak(0, 99), id="unknown-type"),
        pytest.param(_tweak(0, True), id="bool-type"),
        pytest.param(_tweak(1, ""), id="empty-to"),
        pytest.param(_tweak(1, "x" * 254), id="long-id"),
        pytest.param(_tweak(2, "a b"), id="space-in-id"),
        pytest.param(_tweak(2, b"a"), id="bytes-id"),
        pytest.param(_tweak(1, ["unhashable"]), id="list-id"),
        pytest.param(_tweak(12, [[5, 2, [[[["a"], "", True]]]], b""]), id="list-member-id"),
        pytest.param(_tweak(3, -1), id="negative-term"),
        pytest.param(_tweak(3, True), id="bool-term"),
        pytest.param(_tweak(3, 1.5), id="float-term"),
        pytest.param(_tweak(3, 1 << 63), id="huge-term"),
        pytest.param(_tweak(6, [[1, 1, 7, b"", "", 0]]), id="bad-entry-type"),
        pytest.param(_tweak(6, [[1, 1, 0, "str", "", 0]]), id="str-entry-data"),
        pytest.param(_tweak(6, [[1, 1, 0, b""]]), id="short-entry"),
        pytest.param(_tweak(6, {}), id="map-entries"),
        pytest.param(_tweak(8, 0), id="int-reject"),
        pytest.param(_tweak(11, "ctx"), id="str-context"),
        pytest.param(_tweak(12, None), id="snap-without-snapshot"),
        pytest.param(
            _tweak(12, [[5, 2, [[["a", "", True], ["a", "", False]]]], b""]), id="dup-members"
        ),
        pytest.param(_tweak(12, [[5, 2, [[]]]]), id="short-snapshot"),
        pytest.param(msgpack.packb([0] * 14), id="short-message"),
        pytest.param(msgpack.packb({"type": 10}), id="map"),
        pytest.param(msgpack.packb(msgpack.ExtType(1, b"x")), id="ext"),
        pytest.param(encode_message(GOOD) + b"\x00", id="trailing-bytes"),
        pytest.param(b"\x91" * 10_000 + b"\x90", id="deep-nesting"),
        pytest.param(b"\xa2\xff\xfe", id="bad-utf8"),
    ],
)
def test_invalid_messages_raise_protocol_error(payload: bytes) -> None:
    with pytest.raises(PeerProtocolError):
        decode_message(payload)


def test_good_reference_message_decodes() -> None:
    assert decode_message(encode_message(GOOD)) == GOOD


def test_empty_batch_is_rejected() -> None:
    with pytest.raises(PeerProtocolError):
        decode_batch(msgpack.packb([]))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=100))
def test_hello_decoders_only_raise_protocol_errors(data: bytes) -> None:
    for decode in (decode_hello, decode_reply):
        with contextlib.suppress(PeerProtocolError):
            decode(data)


def test_hello_round_trips() -> None:
    hello = Hello(1, "c1", "n1", "n2")
    assert decode_hello(encode_hello(hello)) == hello


async def _read(data: bytes, max_bytes: int = 100, eof: bool = True) -> bytes | None:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    if eof:
        reader.feed_eof()
    return await read_frame(reader, max_bytes)


async def test_read_frame_outcomes() -> None:
    assert await _read(frame_header(3) + b"abc") == b"abc"
    assert await _read(b"") is None
    with pytest.raises(OversizedFrameError):
        await _read(frame_header(101), eof=False)
    with pytest.raises(PeerProtocolError):
        await _read(frame_header(0))
    with pytest.raises(PeerProtocolError):
        await _read(frame_header(5) + b"ab")
    with pytest.raises(PeerProtocolError):
        await _read(b"\x00\x00")
