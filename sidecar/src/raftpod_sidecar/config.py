"""The node's flags, their ``RAFTPOD_<FLAG>`` environment twins, and validation.

Every flag can come from the command line or the environment (the command line
wins), so a StatefulSet can set most of them once in ``env:``. Validation turns
bad input into one ``ConfigError`` that says which flag was wrong and what a
good value looks like, before anything binds a port or touches the disk.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

TICK_MS = 10
"""The driver ticks the core every 10 ms; timeouts in ms become ticks of this size."""


class ConfigError(ValueError):
    """A flag or environment variable has a value the node cannot run with."""


class FileText:
    """A small file's stripped text, re-read only when the file changes.

    Every admin request and every forwarded write needs the admin token: a
    ``stat`` per call instead of open/read/close keeps that off the write path,
    while a rotated Secret (a new file behind the mounted symlink, so a new
    inode) takes effect at once. File times tick in coarse steps, so a file
    changed within the last ``SETTLE_NS`` is read every time (as git treats
    "racily clean" index entries): a same-size rewrite in the same tick as our
    read cannot hide behind an unchanged key.
    """

    SETTLE_NS = 1_000_000_000

    def __init__(self) -> None:
        self._key: tuple[Path, int, int, int, int] | None = None
        self._text = ""

    def read(self, path: Path) -> str:
        st = path.stat()
        key = (path, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        if key != self._key:
            self._text = path.read_text().strip()
            settled = time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) > self.SETTLE_NS
            self._key = key if settled else None
        return self._text


@dataclass(frozen=True)
class HostPort:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class NodeConfig:
    """The validated settings of one node."""

    id: str
    data_dir: Path
    peer_listen: HostPort
    api_listen: HostPort
    admin_listen: HostPort
    peers: dict[str, str]
    join: str | None
    election_timeout_ms: tuple[int, int]
    heartbeat_ms: int
    snapshot_entries: int
    tls_cert: Path | None
    tls_key: Path | None
    tls_ca: Path | None
    admin_token_file: Path | None
    restore_from: str | None
    log_format: str
    log_level: str
    max_request_bytes: int
    request_timeout_ms: int
    advertise_peer: str
    advertise_admin: str
    event_loop: str
    ready_max_lag: int
    cluster_id: str
    forward_writes: str
    _token_text: FileText = field(default_factory=FileText, compare=False, repr=False)

    @property
    def election_ticks(self) -> tuple[int, int]:
        lo, hi = self.election_timeout_ms
        return max(1, lo // TICK_MS), max(2, hi // TICK_MS)

    @property
    def heartbeat_ticks(self) -> int:
        return max(1, self.heartbeat_ms // TICK_MS)

    @property
    def request_timeout(self) -> float:
        return self.request_timeout_ms / 1000.0

    def admin_token(self) -> str | None:
        """The admin bearer token, current even right after a rotated Secret lands."""
        if self.admin_token_file is None:
            return None
        return self._token_text.read(self.admin_token_file) or None


# name, default, help; the environment twin is RAFTPOD_<NAME upper, '-' -> '_'>
_FLAGS: tuple[tuple[str, str | None, str], ...] = (
    ("id", None, "this node's id, e.g. n1 or a pod name (letters, digits, . _ -; required)"),
    ("data-dir", None, "directory for the WAL and snapshots (required)"),
    ("peer-listen", "0.0.0.0:7000", "host:port for peer RPC"),
    ("api-listen", "127.0.0.1:7001", "host:port for the app API (keep it on loopback)"),
    ("admin-listen", "0.0.0.0:7002", "host:port for the admin API"),
    ("peers", "", "initial voters: id=host:port,... (include this node)"),
    ("join", None, "admin URL of an existing member: join that cluster as a learner"),
    ("election-timeout-ms", "150:300", "randomized election timeout range lo:hi"),
    ("heartbeat-ms", "50", "leader heartbeat interval"),
    ("snapshot-entries", "10000", "take a snapshot every N applied entries"),
    ("tls-cert", None, "certificate for peer mTLS (and admin client-cert auth)"),
    ("tls-key", None, "private key for --tls-cert"),
    ("tls-ca", None, "CA bundle that signs peer and admin client certificates"),
    ("admin-token-file", None, "file holding the admin API bearer token"),
    ("restore-from", None, "bootstrap from a backup URL (file:///path) on a fresh data dir"),
    ("log-format", "logfmt", "json or logfmt"),
    ("log-level", "info", "debug, info, warning or error"),
    ("max-request-bytes", str(1 << 20), "largest accepted request body (413 above)"),
    ("request-timeout-ms", "5000", "bound on any wait for a leader, quorum or commit"),
    ("advertise-peer", None, "host:port other nodes dial for this node's peer RPC"),
    ("advertise-admin", None, "URL other nodes use for this node's admin API"),
    ("event-loop", "auto", "auto (uvloop when importable), uvloop or asyncio"),
    ("ready-max-lag", "1000", "/readyz fails when applied trails commit by more than this"),
    ("cluster-id", "", "peers refuse connections from nodes with another cluster id"),
    (
        "forward-writes",
        "peer",
        "how a follower hands app writes to the leader: peer (inside the peer "
        "transport) or http (the leader's admin API, as with version-1 leaders)",
    ),
)


def env_name(flag: str) -> str:
    return "RAFTPOD_" + flag.upper().replace("-", "_")


def build_parser(prog: str = "raftpod-sidecar") -> argparse.ArgumentParser:
    """The flag parser; each flag's default comes from its environment twin first."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Run one raftpod Raft node. Every flag has an environment twin "
        "RAFTPOD_<FLAG> (e.g. RAFTPOD_DATA_DIR); the command line wins.",
    )
    for name, default, text in _FLAGS:
        env = env_name(name)
        shown = f" (default {default})" if default else ""
        parser.add_argument(
            f"--{name}",
            default=os.environ.get(env, default),
            help=f"{text}{shown}; env {env}",
        )
    return parser


def parse_host_port(flag: str, text: str) -> HostPort:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"--{flag}: expected host:port (e.g. 127.0.0.1:7001), got {text!r}")
    return HostPort(host.strip("[]"), int(port))


NODE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,252}")
"""What a member id may be: any pod name fits; no '/', ',', '=' or spaces, which would
break the admin URLs (/admin/members/{id}), --peers and the logs."""


def check_node_id(where: str, node_id: str) -> None:
    if not NODE_ID.fullmatch(node_id):
        raise ConfigError(
            f"{where}: node id {node_id!r} must be 1-253 letters, digits, '.', '_' or '-',"
            " starting with a letter or digit"
        )


def parse_peers(text: str) -> dict[str, str]:
    peers: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        node_id, sep, address = item.partition("=")
        if not sep or not node_id or not address:
            raise ConfigError(f"--peers: expected id=host:port,... got item {item!r}")
        check_node_id("--peers", node_id)
        parse_host_port("peers", address)
        if node_id in peers:
            raise ConfigError(f"--peers: id {node_id!r} appears twice")
        peers[node_id] = address
    return peers


def _positive_int(flag: str, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"--{flag}: expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise ConfigError(f"--{flag}: expected a positive integer, got {value}")
    return value


MAX_REQUEST_BYTES_LIMIT = 8 << 20
"""One entry must fit a peer frame (16 MiB) with room for the message around it."""


def _max_request_bytes(text: str) -> int:
    value = _positive_int("max-request-bytes", text)
    if value > MAX_REQUEST_BYTES_LIMIT:
        raise ConfigError(
            f"--max-request-bytes: at most {MAX_REQUEST_BYTES_LIMIT} (8 MiB), got {value}; "
            "store large blobs elsewhere and put a reference in raftpod"
        )
    return value


def _election_range(text: str) -> tuple[int, int]:
    lo_text, sep, hi_text = text.partition(":")
    if not sep:
        raise ConfigError(f"--election-timeout-ms: expected lo:hi (e.g. 150:300), got {text!r}")
    lo = _positive_int("election-timeout-ms", lo_text)
    hi = _positive_int("election-timeout-ms", hi_text)
    if hi <= lo:
        raise ConfigError(f"--election-timeout-ms: hi must exceed lo, got {text!r}")
    return lo, hi


def _choice(flag: str, text: str, choices: Sequence[str]) -> str:
    value = text.lower()
    if value not in choices:
        raise ConfigError(f"--{flag}: expected one of {', '.join(choices)}, got {text!r}")
    return value


def _optional_file(flag: str, text: str | None) -> Path | None:
    if not text:
        return None
    path = Path(text)
    if not path.is_file():
        raise ConfigError(f"--{flag}: file {text!r} does not exist")
    return path


def _default_advertise_peer(node_id: str, peers: dict[str, str], listen: HostPort) -> str:
    if node_id in peers:
        return peers[node_id]
    host = listen.host if listen.host not in ("0.0.0.0", "::", "") else socket.gethostname()
    return f"{host}:{listen.port}"


def from_args(args: argparse.Namespace) -> NodeConfig:
    """Validate parsed flags into a ``NodeConfig`` or raise ``ConfigError``."""
    if not args.id:
        raise ConfigError("--id is required (or RAFTPOD_ID), e.g. --id n1")
    check_node_id("--id", args.id)
    if not args.data_dir:
        raise ConfigError("--data-dir is required (or RAFTPOD_DATA_DIR)")
    peers = parse_peers(args.peers or "")
    if args.join and peers:
        raise ConfigError("--join and --peers exclude each other: a joining node learns its peers")
    if not args.join and peers and args.id not in peers:
        raise ConfigError(f"--peers must include this node's id {args.id!r}")
    if not args.join and not peers:
        raise ConfigError("give --peers id=host:port,... (initial voters) or --join ADMIN_URL")
    if args.join and not args.join.startswith(("http://", "https://")):
        raise ConfigError(f"--join: expected an admin URL like http://host:7002, got {args.join!r}")
    if args.restore_from and not args.restore_from.startswith(("file://", "s3://")):
        raise ConfigError(
            f"--restore-from: expected file:///path or s3://..., got {args.restore_from!r}"
        )
    tls = [args.tls_cert, args.tls_key, args.tls_ca]
    if any(tls) and not all(tls):
        raise ConfigError("--tls-cert, --tls-key and --tls-ca go together: give all three or none")
    peer_listen = parse_host_port("peer-listen", args.peer_listen)
    admin_listen = parse_host_port("admin-listen", args.admin_listen)
    advertise_peer = args.advertise_peer or _default_advertise_peer(args.id, peers, peer_listen)
    parse_host_port("advertise-peer", advertise_peer)
    tls_cert = _optional_file("tls-cert", args.tls_cert)
    scheme = "https" if tls_cert else "http"
    advertise_admin = args.advertise_admin or (
        f"{scheme}://{advertise_peer.rpartition(':')[0]}:{admin_listen.port}"
    )
    heartbeat_ms = _positive_int("heartbeat-ms", args.heartbeat_ms)
    election = _election_range(args.election_timeout_ms)
    if heartbeat_ms >= election[0]:
        raise ConfigError("--heartbeat-ms must be below the election timeout's lower bound")
    return NodeConfig(
        id=args.id,
        data_dir=Path(args.data_dir),
        peer_listen=peer_listen,
        api_listen=parse_host_port("api-listen", args.api_listen),
        admin_listen=admin_listen,
        peers=peers,
        join=args.join or None,
        election_timeout_ms=election,
        heartbeat_ms=heartbeat_ms,
        snapshot_entries=_positive_int("snapshot-entries", args.snapshot_entries),
        tls_cert=tls_cert,
        tls_key=_optional_file("tls-key", args.tls_key),
        tls_ca=_optional_file("tls-ca", args.tls_ca),
        admin_token_file=_optional_file("admin-token-file", args.admin_token_file),
        restore_from=args.restore_from or None,
        log_format=_choice("log-format", args.log_format, ("json", "logfmt")),
        log_level=_choice("log-level", args.log_level, ("debug", "info", "warning", "error")),
        max_request_bytes=_max_request_bytes(args.max_request_bytes),
        request_timeout_ms=_positive_int("request-timeout-ms", args.request_timeout_ms),
        advertise_peer=advertise_peer,
        advertise_admin=advertise_admin.rstrip("/"),
        event_loop=_choice("event-loop", args.event_loop, ("auto", "uvloop", "asyncio")),
        ready_max_lag=_positive_int("ready-max-lag", args.ready_max_lag),
        cluster_id=args.cluster_id or "",
        forward_writes=_choice("forward-writes", args.forward_writes, ("peer", "http")),
    )


def parse(argv: Sequence[str] | None = None) -> NodeConfig:
    """Parse and validate; argparse exits on unknown flags, we raise on bad values."""
    return from_args(build_parser().parse_args(argv))
