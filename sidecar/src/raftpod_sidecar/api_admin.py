"""The admin API (default :7002): health, readiness, metrics, membership, snapshots, backups.

``/healthz``, ``/readyz`` and ``/metrics`` are open (kubelet probes and
Prometheus scrape them). ``/admin/*`` and ``/internal/*`` need, when
configured, the bearer token from ``--admin-token-file`` or, under TLS, a
client certificate signed by ``--tls-ca``: either one is enough. Leader-only
calls (membership, transfer) on a follower are forwarded to the leader.
"""

from __future__ import annotations

import hmac
import logging
import ssl
import time
from typing import Any

from aiohttp import web

from . import backup
from .api_app import AppApi
from .config import ConfigError, check_node_id, parse_host_port
from .forwarding import INTERNAL_APP_PREFIX, Forwarder
from .httputil import ApiError, Handler, json_response, read_json
from .logs import event
from .metrics import CONTENT_TYPE, NodeMetrics
from .node import NodeError, RaftNode, UnknownOutcomeError
from .raft.errors import (
    ConfChangePendingError,
    InvalidConfChangeError,
    NotLeaderError,
    RaftUsageError,
)
from .raft.messages import ConfChange, ConfChangeType, Role

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})

READINESS_WAIT = 1.0
"""Seconds /readyz waits for the leader to confirm its commit index (probes time out at 2)."""


def make_auth_middleware(node: RaftNode, tls_required: bool) -> Any:
    """Token and/or client-certificate check for everything but the open paths."""

    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in OPEN_PATHS:
            return await handler(request)
        token = node.config.admin_token()
        if token is None and not tls_required:
            return await handler(request)
        if tls_required and request.transport is not None:
            ssl_object = request.transport.get_extra_info("ssl_object")
            if isinstance(ssl_object, ssl.SSLObject) and ssl_object.getpeercert():
                return await handler(request)
        given = request.headers.get("Authorization", "")
        if token is not None and hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return await handler(request)
        what = "a bearer token (Authorization: Bearer ...)" if token else "a client certificate"
        raise ApiError(401, "unauthorized", f"the admin API needs {what}")

    return auth


class AdminApi:
    """Handlers of the admin API."""

    def __init__(
        self, node: RaftNode, metrics: NodeMetrics, forwarder: Forwarder, app_api: AppApi
    ) -> None:
        self.node = node
        self.metrics = metrics
        self.forwarder = forwarder
        self.app_api = app_api

    def add_routes(self, app: web.Application) -> None:
        app.add_routes(
            [
                web.get("/healthz", self.healthz),
                web.get("/readyz", self.readyz),
                web.get("/metrics", self.metrics_handler),
                web.get("/admin/status", self.status),
                web.post("/admin/transfer-leadership", self.transfer_leadership),
                web.post("/admin/members", self.add_member),
                web.post("/admin/members/{id}/promote", self.promote_member),
                web.delete("/admin/members/{id}", self.remove_member),
                web.post("/admin/snapshot", self.snapshot),
                web.post("/admin/backup", self.backup),
            ]
        )
        self.app_api.add_routes(app, prefix=INTERNAL_APP_PREFIX, writes_only=True)

    async def healthz(self, request: web.Request) -> web.Response:
        if self.node.fatal is not None:
            raise ApiError(503, "unhealthy", f"the raft loop stopped: {self.node.fatal!r}")
        return json_response({"ok": True})

    def _membership(self) -> str:
        """Why this node is not a member ("" when it is), from what it has appended and applied."""
        node = self.node
        latest = node.raw.status().conf
        if not latest.members:
            return "not a member of the cluster yet"
        if latest.get(node.id) is None:
            return "removed from the cluster"
        if node.conf.get(node.id) is None:
            return "not a member of the cluster yet"
        return ""

    async def readiness(self) -> str:
        """Why this node is not ready ("" when it is).

        Ready means reads served here are current: the node is a member, the leader
        confirms its commit index (ReadIndex, so a quorum still follows it), and this
        node has applied to within ``--ready-max-lag`` of that index. The follower's own
        commit index is not enough: it only learns what the leader thinks it holds.
        """
        node = self.node
        if node.fatal is not None:
            return "the raft loop stopped"
        reason = self._membership()
        if reason:
            return reason
        leader = node.leader
        if not leader:
            return "no known leader"
        deadline = time.monotonic() + min(READINESS_WAIT, node.config.request_timeout)
        try:
            leader_commit = await node.read_index(deadline, lease=True)
        except (NodeError, RaftUsageError):
            reason = self._membership()
            return reason or (
                f"the leader {leader} did not confirm its commit index in time: "
                "this node may be cut off from the cluster or removed from it"
            )
        lag = leader_commit - node.applied
        if lag > node.config.ready_max_lag:
            return (
                f"applied index {node.applied} trails the leader's commit index "
                f"{leader_commit} by {lag} entries (more than --ready-max-lag "
                f"{node.config.ready_max_lag})"
            )
        return ""

    async def readyz(self, request: web.Request) -> web.Response:
        reason = await self.readiness()
        if reason:
            return json_response({"ready": False, "reason": reason}, 503)
        return json_response({"ready": True})

    async def metrics_handler(self, request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})

    async def status(self, request: web.Request) -> web.Response:
        node = self.node
        status = node.status()
        members = []
        for m in status.conf.members:
            item: dict[str, Any] = {"id": m.id, "address": m.address, "voter": m.voter}
            progress = status.progress.get(m.id)
            if progress is not None:
                item["match_index"] = progress.match
                item["lag"] = max(0, status.last_index - progress.match)
                item["active"] = progress.recent_active
            members.append(item)
        return json_response(
            {
                "id": node.id,
                "role": status.role.name.lower(),
                "term": status.term,
                "leader": status.leader or None,
                "leader_admin_url": node.leader_admin_url(),
                "commit_index": status.commit,
                "applied_index": node.applied,
                "last_index": status.last_index,
                "first_index": status.first_index,
                "snapshot_index": node.storage.snapshot().meta.index,
                "members": members,
                "transferee": status.transferee or None,
                "lease_valid": status.lease_valid,
                "ready": await self.readiness() == "",
            }
        )

    # -- leader-only calls ---------------------------------------------------------
    async def _on_leader(self, request: web.Request) -> web.Response | None:
        """None if this node leads; else the leader's answer to the forwarded request."""
        node = self.node
        deadline = node.deadline()
        await node.wait_leader(deadline)
        if node.role == Role.LEADER:
            return None
        body = await request.read()
        return await self.forwarder.forward(request, body, deadline, app_route=False)

    async def _change(self, change: ConfChange) -> web.Response:
        try:
            conf = await self.node.change_membership(change, self.node.deadline())
        except InvalidConfChangeError as exc:
            raise ApiError(409, "invalid_member_change", str(exc)) from None
        except ConfChangePendingError as exc:
            raise ApiError(409, "change_pending", str(exc)) from None
        return json_response(
            {
                "members": [
                    {"id": m.id, "address": m.address, "voter": m.voter} for m in conf.members
                ]
            }
        )

    async def add_member(self, request: web.Request) -> web.Response:
        doc = await read_json(request)
        node_id, address = doc.get("id"), doc.get("address")
        if not isinstance(node_id, str) or not node_id:
            raise ApiError(400, "bad_request", "id must be a non-empty string")
        try:
            check_node_id("id", node_id)
        except ConfigError as exc:
            raise ApiError(400, "bad_request", str(exc)) from None
        bad_address = ApiError(
            400, "bad_request", f"address must be host:port of the peer listener, got {address!r}"
        )
        if not isinstance(address, str):
            raise bad_address
        try:
            parse_host_port("address", address)
        except ConfigError:
            raise bad_address from None
        if doc.get("voter", False) is not False:
            raise ApiError(
                400,
                "bad_request",
                "members join as learners (voter: false); promote them once caught up",
            )
        forwarded = await self._on_leader(request)
        if forwarded is not None:
            return forwarded
        return await self._change(ConfChange(ConfChangeType.ADD_LEARNER, node_id, address))

    async def promote_member(self, request: web.Request) -> web.Response:
        forwarded = await self._on_leader(request)
        if forwarded is not None:
            return forwarded
        node_id = request.match_info["id"]
        status = self.node.status()
        progress = status.progress.get(node_id)
        if progress is not None and status.commit - progress.match > self.node.config.ready_max_lag:
            raise ApiError(
                409,
                "not_caught_up",
                f"{node_id!r} is {status.commit - progress.match} entries behind; retry later",
            )
        return await self._change(ConfChange(ConfChangeType.PROMOTE, node_id))

    async def remove_member(self, request: web.Request) -> web.Response:
        """Remove a member; a leader asked to remove itself first hands leadership over.

        (A leader that removes itself stops hearing about the change's commit, so it
        could only answer 504; the new leader removes it and answers.)
        """
        forwarded = await self._on_leader(request)
        if forwarded is not None:
            return forwarded
        node = self.node
        node_id = request.match_info["id"]
        if node_id == node.id and node.conf.voters() != (node.id,):
            deadline = node.deadline()
            await self._transfer(self._transfer_target(None), deadline)
            return await self.forwarder.forward(request, b"", deadline, app_route=False)
        return await self._change(ConfChange(ConfChangeType.REMOVE, node_id))

    def _transfer_target(self, wanted: object) -> str:
        """``wanted`` if it names a member, else the most caught-up other voter."""
        node = self.node
        status = node.status()
        if wanted is None:
            candidates = [
                (p.match, peer)
                for peer, p in status.progress.items()
                if peer != node.id and peer in status.conf.voters()
            ]
            if not candidates:
                raise ApiError(409, "no_target", "there is no other voter to transfer to")
            return max(candidates)[1]
        if not isinstance(wanted, str) or status.conf.get(wanted) is None:
            raise ApiError(400, "bad_request", f"to must be the id of a member, got {wanted!r}")
        return wanted

    async def _transfer(self, target: str, deadline: float) -> None:
        try:
            await self.node.transfer_leadership(target, deadline)
        except NotLeaderError:
            raise ApiError(503, "no_leader", "leadership moved during the request; retry") from None
        except UnknownOutcomeError as exc:
            raise ApiError(504, "timeout", str(exc)) from None

    async def transfer_leadership(self, request: web.Request) -> web.Response:
        doc = await read_json(request)
        forwarded = await self._on_leader(request)
        if forwarded is not None:
            return forwarded
        target = self._transfer_target(doc.get("to"))
        started = time.monotonic()
        await self._transfer(target, self.node.deadline())
        return json_response(
            {
                "leader": target,
                "term": self.node.term,
                "seconds": round(time.monotonic() - started, 3),
            }
        )

    # -- snapshots and backups -------------------------------------------------
    async def snapshot(self, request: web.Request) -> web.Response:
        snap = await self.node.take_snapshot()
        return json_response(
            {"index": snap.meta.index, "term": snap.meta.term, "bytes": len(snap.data)}
        )

    async def backup(self, request: web.Request) -> web.Response:
        doc = await read_json(request)
        url = doc.get("url")
        cluster = doc.get("cluster") or self.node.config.cluster_id or backup.DEFAULT_CLUSTER
        retain = doc.get("retain")
        if not isinstance(url, str) or not url:
            raise ApiError(400, "bad_request", 'body must be {"url": "s3://bucket/prefix"}')
        if retain is not None and (type(retain) is not int or retain < 1):
            raise ApiError(400, "bad_request", "retain must be a positive integer")
        try:
            backup.check_url(url)
        except backup.BackupUrlError as exc:
            raise ApiError(400, "bad_request", str(exc)) from None
        try:
            snap = await self.node.take_snapshot()
            metadata = await backup.write_backup(
                url,
                snap,
                self.node.id,
                cluster=str(cluster),
                cluster_uid=str(doc.get("cluster_uid") or ""),
                retain=retain,
            )
        except backup.BackupUrlError as exc:
            raise ApiError(400, "bad_request", str(exc)) from None
        except backup.BackupError as exc:
            self.metrics.backup_failures.inc()
            event(self.node.log, "backup failed", logging.ERROR, url=url, error=str(exc))
            raise ApiError(500, "backup_failed", str(exc)) from None
        self.metrics.backup_last_success.set(time.time())
        event(self.node.log, "backup written", url=metadata["url"], index=metadata["index"])
        return json_response(metadata)
