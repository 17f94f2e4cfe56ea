"""Record framing for the write-ahead log.

A record is ``length u32 | type u8 | payload crc32 u32 | header crc32 u32 |
payload``. The header has its own CRC so a damaged length is never trusted:
that is what lets recovery tell a torn tail from damage in the middle.
One record holds one group commit (everything written before one fsync), so a
crash can only ever tear the last record.
"""

from __future__ import annotations

import struct
import zlib
from enum import IntEnum
from typing import NamedTuple

HEADER = struct.Struct("<IBII")
_CHECKED = struct.Struct("<IBI")  # the header fields its CRC covers
_TYPE_OFFSET = 4  # the type byte follows the u32 length


class RecordType(IntEnum):
    """Type 0 is never written, so zero-filled space never parses as a record."""

    GROUP = 1


class Record(NamedTuple):
    type: RecordType
    payload: bytes
    end: int  # offset just past this record


def encode_record(rtype: RecordType, payload: bytes) -> bytes:
    """Frame ``payload`` as one record."""
    checked = _CHECKED.pack(len(payload), rtype, zlib.crc32(payload))
    return checked + struct.pack("<I", zlib.crc32(checked)) + payload


def decode_record(buf: bytes, offset: int) -> Record | None:
    """The record at ``offset``, or None if it is incomplete or fails a check."""
    if len(buf) - offset < HEADER.size:
        return None
    length, rtype, payload_crc, header_crc = HEADER.unpack_from(buf, offset)
    if zlib.crc32(buf[offset : offset + _CHECKED.size]) != header_crc:
        return None
    if rtype not in _VALID_TYPES:
        return None
    start = offset + HEADER.size
    end = start + length
    if end > len(buf):
        return None
    payload = buf[start:end]
    if zlib.crc32(payload) != payload_crc:
        return None
    return Record(RecordType(rtype), payload, end)


_VALID_TYPES = frozenset(int(t) for t in RecordType)


def read_records(buf: bytes) -> tuple[list[Record], int]:
    """Every valid record from the start, and the offset where reading stopped.

    The offset equals ``len(buf)`` when the whole buffer parsed cleanly.
    """
    records: list[Record] = []
    offset = 0
    while offset < len(buf):
        record = decode_record(buf, offset)
        if record is None:
            break
        records.append(record)
        offset = record.end
    return records, offset


def find_record_after(buf: bytes, offset: int) -> int | None:
    """The first offset past ``offset`` where a fully valid record starts, if any.

    Used only on the recovery error path, to decide whether damage at
    ``offset`` is a torn tail (nothing valid follows) or in the middle.
    """
    if not buf[offset:].strip(b"\x00"):
        return None  # zero-filled space: nothing can follow
    type_byte = bytes([RecordType.GROUP])
    type_at = _TYPE_OFFSET
    position = buf.find(type_byte, offset + 1 + type_at)
    while position != -1:
        candidate = position - type_at
        if decode_record(buf, candidate) is not None:
            return candidate
        position = buf.find(type_byte, position + 1)
    return None
