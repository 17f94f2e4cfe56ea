"""Command encoding: round trips, and validation turning any bad bytes into InvalidCommandError."""

from __future__ import annotations

import contextlib
import re
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from raftpod_sidecar.state.commands import (
    COMPARE_OPS,
    COMPARE_TARGETS,
    MAX_KEY_BYTES,
    Command,
    Compare,
    CompareOp,
    CompareTarget,
    Delete,
    Get,
    LeaseGrant,
    LeaseRevoke,
    LogAppend,
    Put,
    Range,
    Txn,
    decode,
    encode,
)
from raftpod_sidecar.state.errors import InvalidCommandError

VALID: list[Command] = [
    Put("k", b"v"),
    Put("k/é", b"", lease=7, prev_revision=0),
    Put("k", b"\x00\xff", prev_revision=12),
    Delete("k"),
    Delete("k", prev_revision=3),
    Txn(),
    Txn(
        (
            Compare(CompareTarget.VALUE, CompareOp.EQUAL, "a", b"x"),
            Compare(CompareTarget.MOD_REVISION, CompareOp.LESS, "b", 4),
        ),
        (Put("a", b"y", lease=2), Delete("b"), Get("c"), Range("", 0)),
        (Range("p/", 10), Get("a")),
    ),
    LeaseGrant(1),
    LeaseGrant(3600),
    LeaseRevoke(5),
    LogAppend(b""),
    LogAppend(b"\x01" * 1000),
]


@pytest.mark.parametrize("cmd", VALID, ids=lambda c: type(c).__name__)
def test_valid_commands_round_trip(cmd: Command) -> None:
    data = encode(cmd, check=True)
    assert decode(data) == cmd
    assert type(decode(data)) is type(cmd)


def _raw(*fields: Any) -> bytes:
    data: bytes = msgpack.packb(list(fields), use_bin_type=True)
    return data


BAD: dict[str, bytes] = {
    "not msgpack": b"\xc1",
    "truncated": _raw(1, "k", b"v", 0, None)[:-2],
    "not an array": msgpack.packb({"op": 1}),
    "empty array": _raw(),
    "unknown opcode": _raw(99, "k"),
    "opcode as string": _raw("put", "k", b"v", 0, None),
    "opcode as bool": _raw(True, "k", None),
    "get outside txn": _raw(7, "k"),
    "put missing field": _raw(1, "k", b"v", 0),
    "put extra field": _raw(1, "k", b"v", 0, None, 1),
    "empty key": _raw(1, "", b"v", 0, None),
    "key as bytes": _raw(1, b"k", b"v", 0, None),
    "key too long": _raw(2, "x" * (MAX_KEY_BYTES + 1), None),
    "multibyte key too long": _raw(2, "é" * (MAX_KEY_BYTES // 2 + 1), None),
    "invalid utf-8 key": b"\x93\x02\xa2\xff\xfe\xc0",
    "value as str": _raw(1, "k", "v", 0, None),
    "negative lease": _raw(1, "k", b"v", -1, None),
    "lease as float": _raw(1, "k", b"v", 1.0, None),
    "negative prev_revision": _raw(2, "k", -1),
    "huge prev_revision": _raw(2, "k", 2**64 - 1),
    "ttl zero": _raw(4, 0),
    "ttl too long": _raw(4, 10**10),
    "revoke lease zero": _raw(5, 0),
    "log data as str": _raw(6, "text"),
    "txn compare not array": _raw(3, {}, [], []),
    "txn compare wrong arity": _raw(3, [[0, 0, "k"]], [], []),
    "txn compare unknown target": _raw(3, [[9, 0, "k", 1]], [], []),
    "txn compare unhashable target": _raw(3, [[[1], 0, "k", 1]], [], []),
    "txn compare unknown op": _raw(3, [[1, 9, "k", 1]], [], []),
    "txn value compare with int": _raw(3, [[0, 0, "k", 1]], [], []),
    "txn version compare with bytes": _raw(3, [[1, 0, "k", b"1"]], [], []),
    "txn nested txn": _raw(3, [], [[3, [], [], []]], []),
    "txn lease op": _raw(3, [], [[4, 10]], []),
    "txn op unhashable opcode": _raw(3, [], [[[1], "k"]], []),
    "txn op not array": _raw(3, [], ["k"], []),
    "txn put with prev_revision": _raw(3, [], [[1, "k", b"v", 0, 1]], []),
    "txn writes a key twice": _raw(3, [], [[1, "k", b"v", 0, None], [2, "k", None]], []),
    "txn range negative limit": _raw(3, [], [[8, "p", -1]], []),
}


@pytest.mark.parametrize("data", BAD.values(), ids=BAD.keys())
def test_invalid_commands_are_rejected_with_a_reason(data: bytes) -> None:
    with pytest.raises(InvalidCommandError) as info:
        decode(data)
    assert str(info.value)


def test_txn_may_write_a_key_in_each_branch() -> None:
    cmd = Txn((), (Put("k", b"1"),), (Delete("k"),))
    assert decode(encode(cmd)) == cmd


def test_check_rejects_at_encode_time() -> None:
    with pytest.raises(InvalidCommandError, match="key must not be empty"):
        encode(Put("", b"v"), check=True)
    with pytest.raises(InvalidCommandError, match="encode"):
        encode(Put("\ud800", b"v"), check=True)  # a lone surrogate is not UTF-8
    # beyond 64 bits msgpack refuses before any field check; between 2**63 and 2**64
    # the field check names the field
    for huge, says in (
        (10**23, "integers are at most 9223372036854775807"),
        (2**63, "lease must be an integer in [0, 9223372036854775807]"),
    ):
        with pytest.raises(InvalidCommandError, match=re.escape(says)):
            encode(Put("k", b"v", lease=huge), check=True)
    unchecked = encode(Put("", b"v"))  # what a buggy proposer could put in the log
    with pytest.raises(InvalidCommandError):
        decode(unchecked)


def test_app_api_spellings_map_to_codes() -> None:
    assert COMPARE_TARGETS["mod_revision"] is CompareTarget.MOD_REVISION
    assert set(COMPARE_TARGETS) == {"value", "version", "create_revision", "mod_revision", "lease"}
    assert COMPARE_OPS["!="] is CompareOp.NOT_EQUAL


msgpack_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text() | st.binary(),
    lambda inner: st.lists(inner, max_size=5),
    max_leaves=20,
)


@given(st.lists(msgpack_values, max_size=6), st.integers(0, 10))
def test_arbitrary_arrays_decode_or_fail_cleanly(fields: list[Any], opcode: int) -> None:
    try:
        cmd = decode(_raw(opcode, *fields))
    except InvalidCommandError:
        return
    assert decode(encode(cmd)) == cmd


@given(st.binary(max_size=64))
def test_arbitrary_bytes_decode_or_fail_cleanly(data: bytes) -> None:
    with contextlib.suppress(InvalidCommandError):
        decode(data)
