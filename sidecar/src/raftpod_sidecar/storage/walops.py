"""What a write-ahead log group contains: encoded storage operations.

A group payload is one msgpack array of operations, so a batch of thousands of
entries is encoded by one C call. Entries and hard states are NamedTuples, which
msgpack packs as plain arrays.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from enum import IntEnum
from typing import Any

import msgpack

from ..raft.messages import Entry, EntryType, HardState


class Op(IntEnum):
    ENTRIES = 1  # (entries,): replace stored entries from entries[0].index on
    HARD_STATE = 2  # (hard_state,)
    COMPACT = 3  # (index, term): entries up to index are gone
    RESET = 4  # (index, term): a snapshot was installed; the log restarts after it
    BASE = 5  # (hard_state, index, term): first record of a segment, the state at rotation


_ENTRY_TYPES = tuple(EntryType)


def encode_group(ops: Sequence[tuple[Any, ...]]) -> bytes:
    payload: bytes = msgpack.packb(ops, use_bin_type=True)
    return payload


def _entry(raw: Sequence[Any]) -> Entry:
    term, index, etype, data, client, seq = raw
    return Entry(term, index, _ENTRY_TYPES[etype], data, client, seq)


def decode_group(payload: bytes) -> Iterator[tuple[Op, tuple[Any, ...]]]:
    """Operations in the order they were written, with values rebuilt."""
    for raw in msgpack.unpackb(payload, raw=False, use_list=False):
        op = Op(raw[0])
        if op is Op.ENTRIES:
            yield op, (tuple(_entry(e) for e in raw[1]),)
        elif op is Op.HARD_STATE:
            yield op, (HardState(*raw[1]),)
        elif op is Op.BASE:
            yield op, (HardState(*raw[1]), raw[2], raw[3])
        else:
            yield op, (raw[1], raw[2])
