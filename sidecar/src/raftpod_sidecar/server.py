"""Assembles one node (storage, state machine, core, transport, HTTP APIs) and runs it.

Start-up order matters: open storage (recovering the WAL); on a fresh data
dir bootstrap it (from ``--peers``, or from a ``--restore-from`` backup); rebuild
the state machine from the latest snapshot (the log after it is re-applied by
the core); listen for peers; start the Ready loop; serve HTTP; and, for
``--join``, ask an existing member to add this node as a learner. SIGTERM or
SIGINT stops everything in reverse order; a dead Ready loop (disk failure)
stops the process with a non-zero status so its supervisor restarts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import ssl
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
from aiohttp import web

from . import backup, envelope
from .api_admin import AdminApi, make_auth_middleware
from .api_app import AppApi
from .config import NodeConfig
from .forwarding import Forwarder
from .httputil import make_middleware
from .lease_expiry import LeaseExpiry
from .logs import event
from .metrics import NodeMetrics
from .node import RaftNode
from .raft.messages import ConfState, HardState, Member, Snapshot, SnapshotMeta
from .raft.node import Config, RawNode, bootstrap_snapshot
from .state.commands import MAX_KEY_BYTES
from .state.machine import StateMachine
from .storage import DurableStorage
from .transport import PeerTransport, TlsContexts, TlsFiles

JOIN_TIMEOUT_SECONDS = 60.0
MAX_REQUEST_LINE = 3 * MAX_KEY_BYTES + 4096
"""A key of MAX_KEY_BYTES percent-encoded (3 characters a byte) plus a query fits
(aiohttp's default of 8190 refused such keys with a plain-text 400)."""


class StartupError(Exception):
    """The node cannot start; the message says why and what to do."""


def _initial_conf(config: NodeConfig) -> ConfState:
    return ConfState(
        tuple(sorted(Member(node_id, address, True) for node_id, address in config.peers.items()))
    )


async def _bootstrap(config: NodeConfig, storage: DurableStorage, log: logging.Logger) -> None:
    """Give a fresh data dir its first state: a backup, the initial voters, or nothing (join)."""
    if config.restore_from:
        if config.join:
            raise StartupError("--restore-from needs --peers (the restored cluster's voters)")
        try:
            metadata, data = await asyncio.to_thread(backup.read_backup, config.restore_from)
        except backup.BackupError as exc:
            raise StartupError(f"--restore-from: {exc}") from exc
        machine_bytes, _ = envelope.unpack_snapshot(data)
        # Admin URLs of the old cluster mean nothing here: new leaders announce theirs.
        fresh = envelope.pack_snapshot(machine_bytes, {})
        meta = SnapshotMeta(metadata["index"], metadata["term"], _initial_conf(config))
        await storage.persist(HardState(term=meta.term), (), Snapshot(meta, fresh))
        event(
            log,
            "restored from backup",
            url=config.restore_from,
            index=meta.index,
            term=meta.term,
            sha256=metadata["sha256"],
        )
    elif not config.join:
        await storage.persist(None, (), bootstrap_snapshot(_initial_conf(config)))
        event(log, "bootstrapped a new cluster", voters=",".join(sorted(config.peers)))


async def _commit_through_snapshot(storage: DurableStorage, snapshot: Snapshot) -> None:
    """Raise a stored commit index that trails the snapshot (which holds only committed
    entries): a hard state that only moves the commit index waits for the next WAL write,
    so a crash can lose it, and the core must not start with its commit index behind what
    it has applied."""
    hard_state = storage.hard_state
    if hard_state.commit < snapshot.meta.index:
        await storage.persist(hard_state._replace(commit=snapshot.meta.index))


def _is_fresh(storage: DurableStorage) -> bool:
    hard_state, _ = storage.initial_state()
    return hard_state.term == 0 and storage.last_index() == 0 and storage.snapshot().meta.index == 0


def _admin_ssl(config: NodeConfig) -> ssl.SSLContext | None:
    """HTTPS for the admin listener; client certificates are optional (probes have none)."""
    if config.tls_cert is None or config.tls_key is None or config.tls_ca is None:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(config.tls_ca))
    ctx.load_cert_chain(str(config.tls_cert), str(config.tls_key))
    ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


async def _join(config: NodeConfig, node: RaftNode, client_ssl: ssl.SSLContext | None) -> None:
    """Ask an existing member to add this node as a learner, then dial the members."""
    assert config.join is not None
    headers = {}
    token = config.admin_token()
    if token:
        headers["Authorization"] = f"Bearer {token}"
    body = {"id": config.id, "address": config.advertise_peer, "voter": False}
    deadline = time.monotonic() + JOIN_TIMEOUT_SECONDS
    last_error = ""
    connector = aiohttp.TCPConnector(ssl=client_ssl or False)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        while time.monotonic() < deadline:
            try:
                async with session.post(config.join + "/admin/members", json=body) as answer:
                    doc: dict[str, Any] = await answer.json(content_type=None)
                    if answer.status == 200 or doc.get("error") == "invalid_member_change":
                        async with session.get(config.join + "/admin/status") as status:
                            members = (await status.json())["members"]
                        node.update_peers(
                            ConfState(
                                tuple(Member(m["id"], m["address"], m["voter"]) for m in members)
                            )
                        )
                        event(node.log, "joined cluster as learner", via=config.join)
                        return
                    last_error = f"{answer.status} {doc.get('message', doc)}"
                    if answer.status < 500:
                        raise StartupError(f"--join {config.join} refused: {last_error}")
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                last_error = repr(exc)
            await asyncio.sleep(0.5)
    raise StartupError(
        f"--join {config.join}: no success within {JOIN_TIMEOUT_SECONDS}s: {last_error}"
    )


@contextlib.contextmanager
def _listening(flag: str, address: object) -> Iterator[None]:
    """A port already taken (or an address not on this host) is a start-up error
    that names the flag, not a traceback."""
    try:
        yield
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise StartupError(f"{flag} {address}: cannot listen: {reason}") from exc


async def _serve_http(
    app: web.Application, host: str, port: int, ctx: ssl.SSLContext | None
) -> web.AppRunner:
    runner = web.AppRunner(
        app, access_log=None, handle_signals=False, max_line_size=MAX_REQUEST_LINE
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ctx, reuse_address=True)
    await site.start()
    return runner


async def run(config: NodeConfig, log: logging.Logger) -> int:
    """Run the node until SIGTERM/SIGINT (0) or a fatal error (1)."""
    metrics = NodeMetrics(config.id)
    storage = DurableStorage.open(config.data_dir, on_fsync=metrics.wal_fsync.observe)
    fresh = _is_fresh(storage)
    if fresh:
        await _bootstrap(config, storage, log)
    elif config.restore_from:
        event(log, "data dir holds state; --restore-from ignored", logging.WARNING)
    snapshot = storage.snapshot()
    await _commit_through_snapshot(storage, snapshot)
    machine = StateMachine()
    machine_bytes, directory = envelope.unpack_snapshot(snapshot.data)
    if machine_bytes:
        machine.restore(machine_bytes)
    applied = snapshot.meta.index
    raw = RawNode(
        Config(
            id=config.id,
            election_ticks=config.election_ticks,
            heartbeat_ticks=config.heartbeat_ticks,
            applied=applied,
        ),
        storage,
        random.Random(),
    )
    node = RaftNode(
        config=config,
        raw=raw,
        storage=storage,
        machine=machine,
        metrics=metrics,
        logger=log,
        conf=snapshot.meta.conf,
        applied=applied,
        directory=directory,
    )
    tls = None
    if config.tls_cert and config.tls_key and config.tls_ca:
        tls = TlsContexts(TlsFiles(str(config.tls_cert), str(config.tls_key), str(config.tls_ca)))
    transport = PeerTransport(
        config.id,
        str(config.peer_listen),
        node.deliver,
        on_unreachable=node.report_unreachable,
        tls=tls,
        cluster_id=config.cluster_id,
    )
    with _listening("--peer-listen", config.peer_listen):
        await transport.start()
    metrics.add_counters("raftpod_peer", transport.counters.as_dict, "peer transport")
    metrics.add_counters(
        "raft", lambda: {"dropped_messages": raw.dropped_messages}, "invalid peer messages"
    )
    node.start(transport)
    expiry = LeaseExpiry(node, machine, log)
    expiry.start()
    client_ssl = tls.client_context() if tls is not None else None
    forwarder = Forwarder(
        node, config.admin_token, lambda: tls.client_context() if tls is not None else None
    )
    app_api = AppApi(node, machine, forwarder, expiry)
    admin_api = AdminApi(node, metrics, forwarder, app_api)
    http = make_middleware(metrics)
    app = web.Application(middlewares=[http], client_max_size=config.max_request_bytes)
    app_api.add_routes(app)
    admin_ssl = _admin_ssl(config)
    admin = web.Application(
        middlewares=[http, make_auth_middleware(node, admin_ssl is not None)],
        client_max_size=config.max_request_bytes,
    )
    admin_api.add_routes(admin)
    with _listening("--api-listen", config.api_listen):
        app_runner = await _serve_http(app, config.api_listen.host, config.api_listen.port, None)
    with _listening("--admin-listen", config.admin_listen):
        admin_runner = await _serve_http(
            admin, config.admin_listen.host, config.admin_listen.port, admin_ssl
        )
    runners = [app_runner, admin_runner]
    event(
        log,
        "node started",
        peer=str(config.peer_listen),
        api=str(config.api_listen),
        admin=str(config.admin_listen),
        applied=applied,
        fresh=fresh,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    code = 0
    try:
        if config.join and fresh:
            await _join(config, node, client_ssl)
        stopped = asyncio.create_task(stop.wait())
        died = asyncio.create_task(node.wait_fatal())
        await asyncio.wait([stopped, died], return_when=asyncio.FIRST_COMPLETED)
        if node.fatal is not None:
            code = 1
        stopped.cancel()
        died.cancel()
    except StartupError as exc:
        event(log, "start-up failed", logging.ERROR, error=str(exc))
        code = 2
    event(log, "node stopping", code=code)
    for runner in runners:
        await runner.cleanup()
    await expiry.stop()
    await forwarder.close()
    await node.stop()
    await transport.stop()
    with contextlib.suppress(Exception):
        await storage.close()
    event(log, "node stopped", code=code)
    return code
