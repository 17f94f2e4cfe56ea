"""The app API on 127.0.0.1:7001: the key-value store, txns, watches, leases, the opaque log.

Writes become state-machine commands proposed on the leader; on a follower
they are forwarded (see ``forwarding``), so every write works on every node.
Reads are linearizable by default (ReadIndex, served locally once this node
has applied far enough), ``lease`` (the leader's check-quorum lease) or
``stale`` (this node's state as is). ``X-Request-Id`` on a write names a
client session (``client="req:<id>", seq=1``), so a retry of the same write
returns the first outcome instead of applying twice.

Errors: 400 bad input, 404 absent, 409 failed compare, 410 a watch or log
position older than what is retained, 413 too large, 503 no leader/quorum
after a bounded wait, 504 proposed but outcome unknown.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from . import range_answer
from .forwarding import Forwarder, is_forwarded
from .httputil import ApiError, b64, json_response, read_json
from .lease_expiry import LeaseExpiry
from .node import Committed, ProposalDroppedError, RaftNode
from .raft.errors import NotLeaderError, TransferInProgressError
from .raft.messages import Role
from .state import commands as cmd
from .state.errors import HTTP_STATUS, CompactedError, InvalidCommandError
from .state.machine import StateMachine
from .state.watch import Event, EventType

NDJSON = "application/x-ndjson"
PROGRESS_SECONDS = 10.0
"""An idle stream sends a progress line this often (and so notices a gone client)."""
MAX_REQUEST_ID = 128


def jsonable(value: Any) -> Any:
    """A state-machine result as JSON: bytes become base64 under ``<name>_b64``."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if isinstance(item, bytes):
                out[f"{key}_b64"] = b64(item)
            else:
                out[str(key)] = jsonable(item)
        return out
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes):
        return b64(value)
    return value


def _int_param(request: web.Request, name: str, default: int | None = None) -> int | None:
    text = request.query.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise ApiError(400, "bad_request", f"query parameter {name} must be an integer") from None
    if value < 0:
        raise ApiError(400, "bad_request", f"query parameter {name} must not be negative")
    return value


def _session(request: web.Request) -> tuple[str, int]:
    request_id = request.headers.get("X-Request-Id", "")
    if not request_id:
        return "", 0
    if len(request_id) > MAX_REQUEST_ID:
        raise ApiError(400, "bad_request", f"X-Request-Id is longer than {MAX_REQUEST_ID} chars")
    return f"req:{request_id}", 1


def _event_json(event: Event) -> dict[str, Any]:
    return {
        "type": "put" if event.type == EventType.PUT else "delete",
        "key": event.key,
        "value_b64": b64(event.value),
        "revision": event.revision,
        "create_revision": event.create_revision,
        "version": event.version,
        "lease": event.lease,
    }


def _compacted(exc: CompactedError) -> ApiError:
    return ApiError(410, "compacted", str(exc))


def _value_field(doc: dict[str, Any], where: str) -> bytes:
    if "value_b64" in doc:
        try:
            return base64.b64decode(str(doc["value_b64"]), validate=True)
        except binascii.Error:
            raise ApiError(400, "bad_request", f"{where}: value_b64 is not base64") from None
    value = doc.get("value", "")
    if not isinstance(value, str):
        raise ApiError(400, "bad_request", f"{where}: value must be a string (or use value_b64)")
    return value.encode()


def _txn_op(doc: Any, where: str) -> cmd.TxnOp:
    if not isinstance(doc, dict):
        raise ApiError(400, "bad_request", f"{where} must be an object")
    op = doc.get("op")
    key = doc.get("key", "")
    if op == "put":
        lease = doc.get("lease", 0)
        if type(lease) is not int:
            raise ApiError(400, "bad_request", f"{where}: lease must be an integer")
        return cmd.Put(str(key), _value_field(doc, where), lease)
    if op == "delete":
        return cmd.Delete(str(key))
    if op == "get":
        return cmd.Get(str(key))
    if op == "range":
        limit = doc.get("limit", 0)
        if type(limit) is not int:
            raise ApiError(400, "bad_request", f"{where}: limit must be an integer")
        return cmd.Range(str(doc.get("prefix", "")), limit)
    raise ApiError(400, "bad_request", f"{where}: op must be put, delete, get or range")


def _compare(doc: Any, where: str) -> cmd.Compare:
    if not isinstance(doc, dict):
        raise ApiError(400, "bad_request", f"{where} must be an object")
    target = cmd.COMPARE_TARGETS.get(str(doc.get("target", "")))
    op = cmd.COMPARE_OPS.get(str(doc.get("op", "")))
    if target is None:
        names = ", ".join(cmd.COMPARE_TARGETS)
        raise ApiError(400, "bad_request", f"{where}: target must be one of {names}")
    if op is None:
        raise ApiError(400, "bad_request", f"{where}: op must be one of =, !=, <, >")
    value: bytes | int
    if target == cmd.CompareTarget.VALUE:
        value = _value_field(doc, where)
    else:
        number = doc.get("value", 0)
        if type(number) is not int:
            raise ApiError(400, "bad_request", f"{where}: value must be an integer")
        value = number
    return cmd.Compare(target, op, str(doc.get("key", "")), value)


def parse_txn(doc: dict[str, Any]) -> cmd.Txn:
    """The JSON txn body as a command; 400 names the part that is wrong."""
    parts = {}
    for name in ("compare", "success", "failure"):
        items = doc.get(name, [])
        if not isinstance(items, list):
            raise ApiError(400, "bad_request", f"{name} must be an array")
        parts[name] = items
    return cmd.Txn(
        tuple(_compare(c, f"compare[{i}]") for i, c in enumerate(parts["compare"])),
        tuple(_txn_op(o, f"success[{i}]") for i, o in enumerate(parts["success"])),
        tuple(_txn_op(o, f"failure[{i}]") for i, o in enumerate(parts["failure"])),
    )


Parse = Callable[[web.Request, bytes], Awaitable[cmd.Command]]
Rename = dict[str, str] | None


class AppApi:
    """Handlers of the app API; also mounted on the admin listener for forwarded writes."""

    def __init__(
        self, node: RaftNode, machine: StateMachine, forwarder: Forwarder, expiry: LeaseExpiry
    ) -> None:
        self.node = node
        self.machine = machine
        self.forwarder = forwarder
        self.expiry = expiry
        self._closing = False

    def add_routes(self, app: web.Application, prefix: str = "", writes_only: bool = False) -> None:
        writes = [
            web.put(prefix + "/v1/kv/{key:.+}", self._write(self._parse_put)),
            web.delete(prefix + "/v1/kv/{key:.+}", self._write(self._parse_delete)),
            web.post(prefix + "/v1/txn", self._write(self._parse_txn)),
            web.post(prefix + "/v1/leases", self._write(self._parse_grant, {"ttl": "ttl_seconds"})),
            web.delete(prefix + "/v1/leases/{id}", self._write(self._parse_revoke)),
            web.post(prefix + "/v1/leases/{id}/keepalive", self.keepalive),
            web.post(prefix + "/v1/log", self._write(self._parse_log)),
        ]
        app.add_routes(writes)
        if writes_only:
            return
        app.add_routes(
            [
                web.get("/v1/kv/{key:.+}", self.get),
                web.get("/v1/kv", self.range),
                web.get("/v1/watch", self.watch),
                web.get("/v1/log", self.log_stream),
                web.get("/v1/leases/{id}", self.lease_info),
                web.get("/v1/leader", self.leader),
                web.get("/v1/status", self.status),
            ]
        )
        app.on_shutdown.append(self._close_streams)

    # -- writes ------------------------------------------------------------
    def _write(
        self, parse: Parse, rename: dict[str, str] | None = None
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        """A write route: parse a command, propose it (or forward it), answer its result.

        ``rename`` maps result field names onto the API's (``ttl`` -> ``ttl_seconds``).
        """

        async def handler(request: web.Request) -> web.Response:
            body = await request.read()
            command = await parse(request, body)
            try:
                data = cmd.encode(command, check=True)
            except InvalidCommandError as exc:
                raise ApiError(400, "bad_request", str(exc)) from None
            client, seq = _session(request)
            node = self.node
            deadline = node.deadline()
            await node.wait_leader(deadline)
            via_leader = functools.partial(
                self._via_leader,
                request,
                body,
                data,
                (client, seq),
                deadline=deadline,
                rename=rename,
            )
            if node.role != Role.LEADER:
                return await via_leader()
            try:
                committed = await node.propose(data, deadline, client, seq)
            except NotLeaderError:
                return await via_leader()
            except (TransferInProgressError, ProposalDroppedError):
                # Not applied (refused, or overwritten by a new leader's log): the next
                # leader gets it, within the same deadline.
                await node.wait_leader_change(node.id, deadline)
                return await via_leader()
            return self._result_response(committed, rename or {})

        return handler

    async def _via_leader(
        self,
        request: web.Request,
        body: bytes,
        data: bytes,
        session: tuple[str, int],
        *,
        deadline: float,
        rename: Rename,
    ) -> web.Response:
        """A follower's write: inside the peer transport when the leader speaks it, else HTTP."""
        node = self.node
        if is_forwarded(request) or not node.can_forward_proposals():
            return await self.forwarder.forward(request, body, deadline, app_route=True)
        committed = await node.propose_via_leader(data, deadline, *session)
        return self._result_response(committed, rename or {})

    def _result_response(self, committed: Committed, rename: dict[str, str]) -> web.Response:
        result = committed.result
        if isinstance(result, dict) and "error" in result:
            status = HTTP_STATUS.get(str(result["error"]), 400)
            payload = jsonable(result)
            payload.setdefault("message", str(result["error"]))
            payload.setdefault("index", committed.index)
            return json_response(payload, status)
        return json_response({rename.get(k, k): v for k, v in self._render(committed).items()})

    @staticmethod
    def _render(committed: Committed) -> dict[str, Any]:
        """The state machine's result; a deduplicated retry gets the original's, index too."""
        result = committed.result if isinstance(committed.result, dict) else {}
        return {"index": committed.index, **jsonable(result)}

    async def _parse_put(self, request: web.Request, body: bytes) -> cmd.Command:
        return cmd.Put(
            request.match_info["key"],
            body,
            _int_param(request, "lease", 0) or 0,
            _int_param(request, "prev_revision"),
        )

    async def _parse_delete(self, request: web.Request, body: bytes) -> cmd.Command:
        return cmd.Delete(request.match_info["key"], _int_param(request, "prev_revision"))

    async def _parse_txn(self, request: web.Request, body: bytes) -> cmd.Command:
        return parse_txn(await read_json(request))

    async def _parse_grant(self, request: web.Request, body: bytes) -> cmd.Command:
        doc = await read_json(request)
        ttl = doc.get("ttl_seconds")
        if type(ttl) is not int or ttl <= 0:
            raise ApiError(400, "bad_request", "ttl_seconds must be a positive integer")
        return cmd.LeaseGrant(ttl)

    async def _parse_revoke(self, request: web.Request, body: bytes) -> cmd.Command:
        return cmd.LeaseRevoke(_lease_id(request))

    async def _parse_log(self, request: web.Request, body: bytes) -> cmd.Command:
        if not body:
            raise ApiError(400, "bad_request", "the log command (request body) must not be empty")
        return cmd.LogAppend(body)

    async def keepalive(self, request: web.Request) -> web.Response:
        """Leader-only (deadlines live on the leader); a follower forwards it."""
        lease_id = _lease_id(request)
        node = self.node
        deadline = node.deadline()
        await node.wait_leader(deadline)
        if node.role != Role.LEADER:
            return await self.forwarder.forward(request, b"", deadline, app_route=True)
        ttl = self.expiry.keepalive(lease_id)
        if ttl is None:
            raise ApiError(404, "lease_not_found", f"lease {lease_id} does not exist or expired")
        return json_response({"id": lease_id, "ttl_seconds": ttl})

    # -- reads -------------------------------------------------------------
    async def _barrier(self, request: web.Request) -> None:
        consistency = request.query.get("consistency", "linearizable")
        if consistency == "stale":
            return
        if consistency not in ("linearizable", "lease"):
            raise ApiError(400, "bad_request", "consistency must be linearizable, lease or stale")
        await self.node.read_barrier(self.node.deadline(), lease=consistency == "lease")

    async def get(self, request: web.Request) -> web.Response:
        key = request.match_info["key"]
        await self._barrier(request)
        kv = self.machine.kv.get(key)
        if kv is None:
            raise ApiError(404, "not_found", f"key {key!r} does not exist")
        return web.Response(
            body=kv.value,
            content_type="application/octet-stream",
            headers={"X-Raftpod-Revision": str(kv.mod_revision)},
        )

    async def range(self, request: web.Request) -> web.StreamResponse:
        prefix = request.query.get("prefix", "")
        limit = _int_param(request, "limit", 0) or 0
        await self._barrier(request)
        keys, values, more = self.machine.kv.range(prefix, limit)
        return await range_answer.respond(request, keys, values, more, self.machine.kv.revision)

    async def lease_info(self, request: web.Request) -> web.Response:
        lease_id = _lease_id(request)
        await self._barrier(request)
        ttl = self.machine.leases.ttl(lease_id)
        if ttl is None:
            raise ApiError(404, "lease_not_found", f"lease {lease_id} does not exist")
        return json_response(
            {"id": lease_id, "ttl_seconds": ttl, "keys": self.machine.leases.keys(lease_id)}
        )

    async def leader(self, request: web.Request) -> web.Response:
        node = self.node
        return json_response(
            {"leader_id": node.leader or None, "is_self": node.leader == node.id, "term": node.term}
        )

    async def status(self, request: web.Request) -> web.Response:
        node = self.node
        return json_response(
            {
                "id": node.id,
                "role": node.role.name.lower(),
                "term": node.term,
                "leader": node.leader or None,
                "commit_index": node.commit,
                "applied_index": node.applied,
                "revision": self.machine.kv.revision,
                "members": [
                    {"id": m.id, "address": m.address, "voter": m.voter} for m in node.conf.members
                ],
            }
        )

    # -- streams -------------------------------------------------------------
    async def _close_streams(self, app: web.Application) -> None:
        """At shutdown, end every watch and log stream: one whose client kept reading
        held the node's exit for 120 s (aiohttp waits for open handlers), so a pod's
        SIGTERM became a SIGKILL. Clients resume from their last revision or index."""
        self._closing = True
        self.node.wake_waiters()

    def _moved_past(self, seen: int) -> Callable[[], bool]:
        return lambda: self.node.applied > seen or self._closing

    async def _stream(
        self, request: web.Request, fetch: Callable[[], list[dict[str, Any]]]
    ) -> web.StreamResponse:
        """NDJSON lines from ``fetch`` now and after every apply, until the client leaves
        or the node shuts down."""
        try:
            lines = fetch()
        except CompactedError as exc:
            raise _compacted(exc) from None
        response = web.StreamResponse(headers={"Content-Type": NDJSON})
        await response.prepare(request)
        node = self.node
        try:
            while True:
                if lines:
                    await response.write(
                        b"".join(json.dumps(line).encode() + b"\n" for line in lines)
                    )
                changed = await node.wait_condition(
                    self._moved_past(node.applied), time.monotonic() + PROGRESS_SECONDS
                )
                if self._closing or _client_gone(request):
                    break
                if not changed:
                    lines = [{"type": "progress", "applied_index": node.applied}]
                    continue
                try:
                    lines = fetch()
                except CompactedError as exc:
                    await response.write(
                        json.dumps({"error": "compacted", "message": str(exc)}).encode() + b"\n"
                    )
                    break
        except (ConnectionError, RuntimeError):
            pass  # the client went away
        return response

    async def watch(self, request: web.Request) -> web.StreamResponse:
        prefix = request.query.get("prefix", "")
        start = _int_param(request, "from_revision")
        cursor = [self.machine.kv.revision + 1 if start is None else start]

        def fetch() -> list[dict[str, Any]]:
            events = self.machine.watch.events_since(cursor[0], prefix)
            # every event up to the store revision has been seen, matching or not
            cursor[0] = max(cursor[0], self.machine.kv.revision + 1)
            return [_event_json(e) for e in events]

        return await self._stream(request, fetch)

    async def log_stream(self, request: web.Request) -> web.StreamResponse:
        cursor = [_int_param(request, "from_index", 1) or 1]

        def fetch() -> list[dict[str, Any]]:
            records = self.machine.oplog.log_since(cursor[0])
            cursor[0] = max(cursor[0], self.machine.applied_index + 1)
            return [{"index": r.index, "term": r.term, "data_b64": b64(r.data)} for r in records]

        return await self._stream(request, fetch)


def _client_gone(request: web.Request) -> bool:
    """The stream's client closed its connection. Checked after every wake-up, so a
    watch whose prefix sees no events is not woken by every apply until its next
    progress line fails to write (up to ``PROGRESS_SECONDS``)."""
    transport = request.transport
    return transport is None or transport.is_closing()


def _lease_id(request: web.Request) -> int:
    text = request.match_info["id"]
    if not text.isdigit() or int(text) <= 0:
        raise ApiError(400, "bad_request", f"lease id must be a positive integer, got {text!r}")
    return int(text)
