"""How one key-value write or read is spelled over HTTP for each system under test.

The load generator is the same for raftpod and etcd; only these adapters
differ: raftpod's app API (``PUT /v1/kv/{key}``, ``GET
/v1/kv/{key}?consistency=...``) and etcd's JSON gateway (``POST /v3/kv/put``,
``POST /v3/kv/range`` with base64 keys and values).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Literal, Protocol

SystemName = Literal["raftpod", "etcd"]
SYSTEMS: tuple[SystemName, ...] = ("raftpod", "etcd")

# Read consistencies: raftpod's three, etcd's two.
READ_MODES = ("linearizable", "lease", "stale", "serializable")


@dataclass(frozen=True)
class HttpCall:
    """One request, ready for aiohttp (or urllib)."""

    method: str
    url: str
    body: bytes
    content_type: str


class Target(Protocol):
    """The HTTP spelling of a put and a get against one system."""

    name: SystemName

    def put(self, endpoint: str, key: str, value: bytes) -> HttpCall: ...

    def get(self, endpoint: str, key: str, mode: str) -> HttpCall: ...

    def read_ok(self, status: int) -> bool: ...


class RaftpodTarget:
    """raftpod's app API; a 404 on a read means "absent", which is a valid answer."""

    name: SystemName = "raftpod"

    def put(self, endpoint: str, key: str, value: bytes) -> HttpCall:
        return HttpCall("PUT", f"{endpoint}/v1/kv/{key}", value, "application/octet-stream")

    def get(self, endpoint: str, key: str, mode: str) -> HttpCall:
        if mode not in ("linearizable", "lease", "stale"):
            raise ValueError(f"raftpod has no {mode!r} reads")
        return HttpCall("GET", f"{endpoint}/v1/kv/{key}?consistency={mode}", b"", "")

    def read_ok(self, status: int) -> bool:
        return status in (200, 404)


class EtcdTarget:
    """etcd's gRPC-JSON gateway (v3 API)."""

    name: SystemName = "etcd"

    def put(self, endpoint: str, key: str, value: bytes) -> HttpCall:
        doc = {"key": _b64(key.encode()), "value": _b64(value)}
        return HttpCall("POST", f"{endpoint}/v3/kv/put", json.dumps(doc).encode(), _JSON)

    def get(self, endpoint: str, key: str, mode: str) -> HttpCall:
        if mode not in ("linearizable", "serializable"):
            raise ValueError(f"etcd has no {mode!r} reads")
        doc = {"key": _b64(key.encode()), "serializable": mode == "serializable"}
        return HttpCall("POST", f"{endpoint}/v3/kv/range", json.dumps(doc).encode(), _JSON)

    def read_ok(self, status: int) -> bool:
        return status == 200


_JSON = "application/json"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def target_for(system: str) -> Target:
    """The adapter for ``system`` ("raftpod" or "etcd")."""
    if system == "raftpod":
        return RaftpodTarget()
    if system == "etcd":
        return EtcdTarget()
    raise ValueError(f"unknown system {system!r}; expected one of {', '.join(SYSTEMS)}")
