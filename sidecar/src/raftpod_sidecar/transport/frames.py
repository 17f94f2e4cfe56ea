"""Length-prefixed frames: a 4-byte big-endian payload length, then the payload.

The reader refuses a frame longer than the configured maximum *before*
reading its payload, so a peer cannot make us buffer an arbitrary amount.
Snapshot chunks are at most ``snapshot_chunk_bytes`` (1 MiB by default) and
APP messages at most ``max_msg_bytes`` (1 MiB), so the default maximum of
16 MiB leaves room for batches without letting one connection pin much memory.
"""

from __future__ import annotations

import asyncio
import struct

from raftpod_sidecar.transport.codec import PeerProtocolError

DEFAULT_MAX_FRAME_BYTES = 16 << 20
HEADER = struct.Struct(">I")


class OversizedFrameError(PeerProtocolError):
    """The peer announced a frame larger than we accept."""


def frame_header(length: int) -> bytes:
    """The 4-byte prefix for a payload of ``length`` bytes."""
    return HEADER.pack(length)


async def read_frame(reader: asyncio.StreamReader, max_bytes: int) -> bytes | None:
    """The next frame's payload, or None on a clean end of stream between frames.

    Raises ``OversizedFrameError`` if the announced length exceeds ``max_bytes``
    and ``PeerProtocolError`` on an empty frame or a stream cut inside a frame.
    """
    try:
        header = await reader.readexactly(HEADER.size)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise PeerProtocolError("stream ended inside a frame header") from None
        return None
    (length,) = HEADER.unpack(header)
    if length > max_bytes:
        raise OversizedFrameError(f"frame of {length} bytes exceeds the {max_bytes}-byte limit")
    if length == 0:
        raise PeerProtocolError("empty frame")
    try:
        return await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        raise PeerProtocolError("stream ended inside a frame") from None


def write_frame(writer: asyncio.StreamWriter, payload: bytes) -> None:
    """Queue one frame on ``writer`` (the caller drains)."""
    writer.write(HEADER.pack(len(payload)) + payload)
