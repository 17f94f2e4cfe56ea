"""Wire form of Raft messages: compact msgpack arrays, strictly validated on decode.

Messages are ``NamedTuple`` values, so msgpack packs them (and the nested
``Entry``/``Snapshot``/``SnapshotMeta``/``ConfState``/``Member``) as plain
arrays in field order; ``IntEnum`` values pack as ints. Decoding rebuilds the
tuples and checks every field (type, enum range, non-negative ints, id shape,
array lengths), because the bytes come from the network: anything malformed
raises ``PeerProtocolError`` and nothing else, so the caller can close that one
connection. A frame's payload is an array of messages (batching).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import msgpack

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

MAX_ID_LEN = 253
"""Node ids are short strings; 253 (a DNS name) so an id can be a certificate DNS SAN."""
MAX_ADDRESS_LEN = 1024
MAX_UINT = (1 << 63) - 1
"""Indexes, terms, offsets fit in a signed 64-bit int (what other Raft stores expect)."""

_MESSAGE_FIELDS = len(Message._fields)
_ENTRY_FIELDS = len(Entry._fields)
_PEER_TYPES: dict[int, MessageType] = {int(t): t for t in MessageType if t not in LOCAL_MESSAGES}
_ENTRY_TYPES: dict[int, EntryType] = {int(t): t for t in EntryType}


class PeerProtocolError(Exception):
    """A peer sent bytes that are not a valid frame, handshake or message."""


def encode_message(msg: Message) -> bytes:
    """One message as a msgpack array (the core builds valid messages; no checks here)."""
    return msgpack.packb(msg)  # type: ignore[no-any-return]


def decode_message(data: bytes) -> Message:
    """Parse and validate one message; raise ``PeerProtocolError`` if it is malformed."""
    return message_from_obj(unpack(data))


def array_header(count: int) -> bytes:
    """The msgpack header of an array of ``count`` items (to join pre-encoded items)."""
    if count < 16:
        return bytes((0x90 | count,))
    if count < 1 << 16:
        return b"\xdc" + struct.pack(">H", count)
    return b"\xdd" + struct.pack(">I", count)


def join_encoded(encoded: Sequence[bytes]) -> bytes:
    """A batch payload from already-encoded messages: an array of them."""
    return array_header(len(encoded)) + b"".join(encoded)


def encode_batch(messages: Sequence[Message]) -> bytes:
    """Several messages as one payload (an array of message arrays)."""
    return msgpack.packb(list(messages))  # type: ignore[no-any-return]


def decode_batch(data: bytes) -> list[Message]:
    """Parse and validate a batch payload; raise ``PeerProtocolError`` if malformed."""
    obj = unpack(data)
    if type(obj) is not list or not obj:
        raise PeerProtocolError("a batch must be a non-empty array of messages")
    return [message_from_obj(m) for m in obj]


def unpack(data: bytes) -> Any:
    """msgpack-decode one complete object; every decoder failure becomes ``PeerProtocolError``."""
    try:
        return msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=True)
    except Exception as exc:  # msgpack raises many types (ValueError, ExtraData, StackError...)
        raise PeerProtocolError(f"undecodable msgpack: {type(exc).__name__}") from None


def _fail(what: str) -> PeerProtocolError:
    return PeerProtocolError(f"malformed message: {what}")


def _is_uint(v: object) -> bool:
    return type(v) is int and 0 <= v <= MAX_UINT


def _check_uints(names: tuple[str, ...], values: tuple[object, ...]) -> None:
    """Raise naming the first field that is not an int in [0, 2**63)."""
    for name, v in zip(names, values, strict=True):
        if not _is_uint(v):
            raise _fail(f"{name} must be an int in [0, 2**63)")


def _bool(v: object, what: str) -> bool:
    if type(v) is not bool:
        raise _fail(f"{what} must be a bool")
    return v


def _bytes(v: object, what: str) -> bytes:
    if type(v) is not bytes:
        raise _fail(f"{what} must be bytes")
    return v


def valid_id(v: object) -> bool:
    """Whether ``v`` is a node id: a non-empty printable ASCII string of at most 253 chars."""
    return (
        type(v) is str
        and 0 < len(v) <= MAX_ID_LEN
        and v.isascii()
        and v.isprintable()
        and " " not in v
    )


_known_ids: set[str] = set()
_KNOWN_IDS_MAX = 4096
"""Ids already validated (a cluster has a handful); bounded so peers cannot grow it."""


def _id(v: object, what: str) -> str:
    if type(v) is str and v in _known_ids:
        return v
    if not valid_id(v):
        raise _fail(f"{what} must be a node id")
    assert isinstance(v, str)
    if len(_known_ids) < _KNOWN_IDS_MAX:
        _known_ids.add(v)
    return v


def _array(v: object, n: int, what: str) -> list[Any]:
    if type(v) is not list or len(v) != n:
        raise _fail(f"{what} must be an array of {n}")
    return v


_ENTRY_INTS = ("entry term", "entry index", "entry seq")


def _entry(v: object) -> Entry:
    if type(v) is not list or len(v) != _ENTRY_FIELDS:
        raise _fail(f"entry must be an array of {_ENTRY_FIELDS}")
    term, index, etype, data, client, seq = v
    if not (_is_uint(term) and _is_uint(index) and _is_uint(seq)):
        _check_uints(_ENTRY_INTS, (term, index, seq))
    kind = _ENTRY_TYPES.get(etype) if type(etype) is int else None
    if kind is None:
        raise _fail("entry type")
    if type(data) is not bytes:
        raise _fail("entry data must be bytes")
    if type(client) is not str or len(client) > MAX_ID_LEN:
        raise _fail("entry client must be a short string")
    return Entry(term, index, kind, data, client, seq)


def _member(v: object) -> Member:
    node_id, address, voter = _array(v, 3, "member")
    if type(address) is not str or len(address) > MAX_ADDRESS_LEN:
        raise _fail("member address")
    return Member(_id(node_id, "member id"), address, _bool(voter, "member voter"))


def _snapshot(v: object) -> Snapshot:
    meta, data = _array(v, 2, "snapshot")
    index, term, conf = _array(meta, 3, "snapshot meta")
    _check_uints(("snapshot index", "snapshot term"), (index, term))
    (members_obj,) = _array(conf, 1, "conf state")
    if type(members_obj) is not list:
        raise _fail("conf members must be an array")
    members = tuple(_member(m) for m in members_obj)
    if len({m.id for m in members}) != len(members):
        raise _fail("duplicate member id")
    return Snapshot(SnapshotMeta(index, term, ConfState(members)), _bytes(data, "snapshot data"))


_MESSAGE_INTS = ("term", "log_term", "index", "commit", "reject_hint", "hint_term", "chunk_offset")


def message_from_obj(v: object) -> Message:
    """Build a validated ``Message`` from a decoded msgpack array."""
    if type(v) is not list or len(v) != _MESSAGE_FIELDS:
        raise _fail(f"message must be an array of {_MESSAGE_FIELDS}")
    (
        mtype,
        to,
        frm,
        term,
        log_term,
        index,
        entries,
        commit,
        reject,
        reject_hint,
        hint_term,
        context,
        snapshot,
        chunk_offset,
        chunk_done,
    ) = v
    kind = _PEER_TYPES.get(mtype) if type(mtype) is int else None
    if kind is None:
        raise _fail("type is not a peer message type")
    ints = (term, log_term, index, commit, reject_hint, hint_term, chunk_offset)
    for n in ints:
        if type(n) is not int or n < 0 or n > MAX_UINT:
            _check_uints(_MESSAGE_INTS, ints)
    if type(entries) is not list:
        raise _fail("entries must be an array")
    if type(reject) is not bool or type(chunk_done) is not bool:
        raise _fail("reject and chunk_done must be bools")
    if type(context) is not bytes:
        raise _fail("context must be bytes")
    if snapshot is None:
        if kind is MessageType.SNAP:
            raise _fail("SNAP without a snapshot")
        snap = None
    else:
        snap = _snapshot(snapshot)
    return Message(
        kind,
        _id(to, "to"),
        _id(frm, "frm"),
        term,
        log_term,
        index,
        tuple([_entry(e) for e in entries]),
        commit,
        reject,
        reject_hint,
        hint_term,
        context,
        snap,
        chunk_offset,
        chunk_done,
    )
