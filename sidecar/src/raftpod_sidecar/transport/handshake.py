"""The hello exchanged at the start of every peer connection.

The dialer says who it is and whom it meant to reach; the listener accepts only
if that target is itself (and the cluster id matches, when configured), then
answers with a verdict. Peers are known by the id in the hello (checked against
the TLS certificate when TLS is on), never by their source address.

Wire form (msgpack arrays inside ordinary frames):
hello ``["raftpod", version, cluster_id, from_id, to_id]``;
reply ``["raftpod", version, accepted, reason]``.

Versions, for rolling upgrades: a dialer always says ``HELLO_VERSION`` (1), which
every release accepts; the listener answers with its own ``PROTOCOL_VERSION``, so
the dialer learns what the peer understands before relying on it. Version 2
steps proposals forwarded by followers (PROP); a version-1 peer drops them.
"""

from __future__ import annotations

from typing import NamedTuple

import msgpack

from raftpod_sidecar.transport.codec import PeerProtocolError, unpack, valid_id

MAGIC = "raftpod"
HELLO_VERSION = 1
PROTOCOL_VERSION = 2
FORWARDED_PROPOSALS_VERSION = 2
MAX_CLUSTER_ID_LEN = 253
MAX_REASON_LEN = 512


class Hello(NamedTuple):
    version: int
    cluster_id: str
    from_id: str
    to_id: str


class HelloReply(NamedTuple):
    version: int
    accepted: bool
    reason: str


def encode_hello(hello: Hello) -> bytes:
    return msgpack.packb([MAGIC, *hello])  # type: ignore[no-any-return]


def decode_hello(data: bytes) -> Hello:
    """Parse a hello; raise ``PeerProtocolError`` if it is not one."""
    obj = unpack(data)
    if type(obj) is not list or len(obj) != 5 or obj[0] != MAGIC:
        raise PeerProtocolError("not a raftpod hello")
    _, version, cluster_id, from_id, to_id = obj
    if type(version) is not int or version < 0:
        raise PeerProtocolError("hello version must be a non-negative int")
    if type(cluster_id) is not str or len(cluster_id) > MAX_CLUSTER_ID_LEN:
        raise PeerProtocolError("hello cluster id must be a short string")
    if not valid_id(from_id) or not valid_id(to_id):
        raise PeerProtocolError("hello ids must be node ids")
    return Hello(version, cluster_id, from_id, to_id)


def encode_reply(reply: HelloReply) -> bytes:
    return msgpack.packb([MAGIC, *reply])  # type: ignore[no-any-return]


def decode_reply(data: bytes) -> HelloReply:
    """Parse the listener's verdict; raise ``PeerProtocolError`` if it is not one."""
    obj = unpack(data)
    if type(obj) is not list or len(obj) != 4 or obj[0] != MAGIC:
        raise PeerProtocolError("not a raftpod hello reply")
    _, version, accepted, reason = obj
    if type(version) is not int or type(accepted) is not bool or type(reason) is not str:
        raise PeerProtocolError("malformed hello reply")
    return HelloReply(version, accepted, reason[:MAX_REASON_LEN])


def check_hello(hello: Hello, self_id: str, cluster_id: str) -> str:
    """Why the listener ``self_id`` must refuse ``hello`` ("" if it may accept)."""
    if not HELLO_VERSION <= hello.version <= PROTOCOL_VERSION:
        return (
            f"protocol version {hello.version} unsupported "
            f"(want {HELLO_VERSION} to {PROTOCOL_VERSION})"
        )
    if hello.to_id != self_id:
        return f"this is node {self_id!r}, not {hello.to_id!r}"
    if cluster_id and hello.cluster_id != cluster_id:
        return f"cluster id {hello.cluster_id!r} is not {cluster_id!r}"
    if hello.from_id == self_id:
        return "a node cannot dial itself"
    return ""
