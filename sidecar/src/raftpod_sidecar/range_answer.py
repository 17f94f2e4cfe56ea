"""The answer to a prefix range, written piece by piece when it is large.

A node's event loop also runs its Raft Ready loop, so one long computation
stops its heartbeats: encoding a 200,000-key answer (48 MB of JSON) in one go
held a leader for 1.1-1.5 s and its followers elected another leader. A large
answer is therefore encoded and written ``PIECE_ITEMS`` items (or about
``PIECE_BYTES`` of values) at a time with chunked transfer encoding, the loop
running between pieces; a slow client holds only the pieces in flight. A
small one (one piece) goes out as a plain JSON response. The items were taken
at one revision, so the answer is consistent however long it takes to write.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterator
from typing import Any

from aiohttp import web

from .httputil import b64, json_response
from .state.kv import KeyValue

PIECE_ITEMS = 1000
PIECE_BYTES = 1 << 20


def _item(key: str, kv: KeyValue) -> dict[str, Any]:
    return {
        "key": key,
        "value_b64": b64(kv.value),
        "revision": kv.mod_revision,
        "create_revision": kv.create_revision,
        "version": kv.version,
        "lease": kv.lease,
    }


def _pieces(keys: list[str], values: list[KeyValue]) -> Iterator[tuple[int, int]]:
    """``(start, end)`` of each piece."""
    start, size = 0, 0
    for i, (key, kv) in enumerate(zip(keys, values, strict=True)):
        size += len(key) + len(kv.value)
        if i + 1 - start >= PIECE_ITEMS or size >= PIECE_BYTES:
            yield start, i + 1
            start, size = i + 1, 0
    if start < len(keys) or not keys:
        yield start, len(keys)


async def respond(
    request: web.Request, keys: list[str], values: list[KeyValue], more: bool, revision: int
) -> web.StreamResponse:
    """``{"items": [...], "more": ..., "revision": ...}`` for ``keys`` and their ``values``."""
    pieces = _pieces(keys, values)
    first = next(pieces)
    if first[1] == len(keys):
        return json_response(
            {"items": list(map(_item, keys, values)), "more": more, "revision": revision}
        )
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    opening = b'{"items": ['
    try:
        for start, end in itertools.chain((first,), pieces):
            items = list(map(_item, keys[start:end], values[start:end]))
            await response.write(opening + json.dumps(items)[1:-1].encode())
            opening = b", "
            await asyncio.sleep(0)  # the Ready loop's turn
        closing = json.dumps({"more": more, "revision": revision})[1:]
        await response.write(b"], " + closing.encode())
        await response.write_eof()
    except (ConnectionError, RuntimeError):
        pass  # the client went away
    return response
