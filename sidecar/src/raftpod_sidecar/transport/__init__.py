"""Peer transport: length-prefixed msgpack frames between Raft nodes, with an
identity handshake on every connection and optional mutual TLS."""

from raftpod_sidecar.transport.codec import PeerProtocolError, decode_message, encode_message
from raftpod_sidecar.transport.peers import PeerTransport, TransportCounters, TransportOptions
from raftpod_sidecar.transport.tls import TlsContexts, TlsFiles

__all__ = [
    "PeerProtocolError",
    "PeerTransport",
    "TlsContexts",
    "TlsFiles",
    "TransportCounters",
    "TransportOptions",
    "decode_message",
    "encode_message",
]
