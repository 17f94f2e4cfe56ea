"""The node's framing of log entries and snapshots around the state machine's bytes.

The log carries two kinds of NORMAL entries: commands for the state machine,
and the node's own records (today one: "member X serves its admin API at URL",
which a new leader proposes so that followers know where to forward writes).
One tag byte tells them apart. A snapshot holds the state machine's bytes and
the admin-URL directory together, so both survive log compaction.
"""

from __future__ import annotations

from enum import IntEnum
from typing import cast

import msgpack

_COPY_CHUNK = 1 << 20


class Tag(IntEnum):
    MACHINE = 0
    DIRECTORY = 1


class EnvelopeError(ValueError):
    """Bytes in the log or a snapshot that this node did not write."""


def machine_command(command: bytes) -> bytes:
    return bytes((Tag.MACHINE,)) + command


def directory_record(node_id: str, admin_url: str) -> bytes:
    record: bytes = msgpack.packb([node_id, admin_url])
    return bytes((Tag.DIRECTORY,)) + record


def open_entry(data: bytes) -> tuple[Tag, bytes]:
    """Split entry data into its tag and payload."""
    if not data:
        raise EnvelopeError("empty entry data")
    try:
        return Tag(data[0]), data[1:]
    except ValueError:
        raise EnvelopeError(f"unknown entry tag {data[0]}") from None


def read_directory_record(payload: bytes) -> tuple[str, str]:
    node_id, url = msgpack.unpackb(payload)
    return str(node_id), str(url)


def pack_snapshot(machine: bytes | memoryview, directory: dict[str, str]) -> bytes:
    """``{"v": 1, "directory": ..., "machine": <bin>}`` as msgpack.

    The machine's bytes (as large as the state) are copied a megabyte at a time, so a
    thread packing a large snapshot lets the event loop take the GIL between copies
    (one copy of 49 MB held it for 60-110 ms). The result is a ``bytearray`` that
    nothing mutates, typed as the ``bytes`` it stands for: ``bytes(out)`` would be
    that one long copy again.
    """
    head = msgpack.Packer(autoreset=False)
    head.pack_map_header(3)
    for item in ("v", 1, "directory", directory, "machine"):
        head.pack(item)
    size = len(machine)
    # msgpack "bin 32": 0xc6 and a big-endian 32-bit length, then the bytes
    prefix = bytes(head.getbuffer()) + b"\xc6" + size.to_bytes(4, "big")
    out = bytearray(prefix)
    source = memoryview(machine)
    for start in range(0, size, _COPY_CHUNK):
        out += source[start : start + _COPY_CHUNK]
    return cast(bytes, out)


def unpack_snapshot(data: bytes) -> tuple[bytes, dict[str, str]]:
    """The state machine's bytes and the directory; empty data is the empty state."""
    if not data:
        return b"", {}
    try:
        doc = msgpack.unpackb(data)
        return bytes(doc["machine"]), {str(k): str(v) for k, v in doc["directory"].items()}
    except (ValueError, KeyError, TypeError, msgpack.ExtraData) as exc:
        raise EnvelopeError(f"not a raftpod snapshot: {exc}") from exc
