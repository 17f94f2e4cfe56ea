"""Concurrent clients that drive the app API and record every operation in a ``History``.

Each client is bound to one node's app API and loops until a deadline over a
few keys: a linearizable ``get``, a ``put`` of a value no one else writes, or
a compare-and-set (read, then ``PUT ?prev_revision=R`` or a txn comparing the
value read). Unique values make a revision compare the same as a value compare
(a revision names the one write that produced a value), so both are a ``cas``
in the model.

How an answer becomes a status (the app API contract, sidecar ``api_app`` and
``node``): 200 is ``ok`` (404 on a get is ``ok`` with no value); 409 and a txn
with ``succeeded: false`` are ``fail`` (the compare failed, nothing was
written); 503 is ``fail`` (no leader before proposing, or the proposal was
overwritten by a new leader: documented as not applied); a connection refused
is ``fail`` only if no attempt of the request was sent before. Anything else
after the request may have left (504, a reset, a timeout, a 5xx) is
``unknown``, and the client then continues as a new process, as Jepsen does,
since a process has one operation at a time.

aiohttp silently resends an idempotent request (GET, PUT) once when the server
drops the connection, and there is no public switch to stop it: so the client
counts sent request headers (a trace hook) to tell "refused before anything
was sent" from "the node died with our request and the resend was refused".
(Such a resend cannot apply a write twice: it only happens when the node went
away mid-request, and it cannot be back within milliseconds.)

Half of the writes, chosen by the seeded RNG, carry ``X-Request-Id`` (the
write's unique value), so the API's exactly-once path is exercised under faults
as well as plain writes; the history records which (``request_id``).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp

from .history import FAIL, OK, UNKNOWN, History, Op

OP_TIMEOUT = 3.0
"""Client-side bound on one request: the node's own --request-timeout-ms (2 s) plus slack."""
THINK = (0.0, 0.02)
"""Pause between a client's operations (pacing, not synchronisation)."""
REQUEST_ID_SHARE = 0.5
"""Share of writes sent with ``X-Request-Id``."""
REFUSED_BACKOFF = 0.1
"""Extra pause after a refused connection, so a client of a dead node does not spin."""


def classify(status: int, op: str) -> tuple[str, str | None]:
    """The history status of an HTTP answer to ``op`` (see the module docstring)."""
    if status == 200 or (status == 404 and op == "get"):
        return OK, None
    if status == 409 and op == "cas":
        return FAIL, "compare_failed"
    if status == 503:
        return FAIL, "503"
    return UNKNOWN, str(status)


class Client:
    """One client bound to one node; ``process`` changes after every unknown outcome."""

    def __init__(
        self,
        index: int,
        clients: int,
        node: str,
        url: str,
        *,
        history: History,
        rng: random.Random,
        timeout: float = OP_TIMEOUT,
        consistency: str = "linearizable",
    ) -> None:
        self.index = index
        self.clients = clients
        self.node = node
        self.url = url
        self.history = history
        self.rng = rng
        self.timeout = timeout
        self.consistency = consistency  # of reads; only a test of the checker asks for less
        self.process = index
        self.seq = 0
        self.refused = False
        self.sent = 0  # requests whose headers went out, retries included
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Client:
        trace = aiohttp.TraceConfig()
        trace.on_request_headers_sent.append(self._count_sent)
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(force_close=True),
            timeout=aiohttp.ClientTimeout(total=self.timeout),
            trace_configs=[trace],
        )
        return self

    async def _count_sent(self, *_: object) -> None:
        self.sent += 1

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    def _value(self) -> str:
        self.seq += 1
        return f"c{self.index}-{self.seq}"

    def _start(self, op: str, key: str, **fields: Any) -> Op:
        record = Op(self.process, self.node, op, key, time.monotonic_ns(), **fields)
        self.history.ops.append(record)
        return record

    def _finish(self, record: Op, status: str, error: str | None = None) -> Op:
        record.ret = time.monotonic_ns()
        record.status = status
        record.error = error
        if status == UNKNOWN:
            self.process += self.clients
        return record

    async def _request(
        self, record: Op, method: str, path: str, **kwargs: Any
    ) -> tuple[int, bytes, Mapping[str, str]] | None:
        """The answer, or None after recording a failure without one."""
        assert self._session is not None, "use the client as an async context manager"
        sent = self.sent
        try:
            async with self._session.request(method, self.url + path, **kwargs) as answer:
                return answer.status, await answer.read(), answer.headers
        except aiohttp.ClientConnectorError as exc:
            self.refused = True
            if self.sent == sent:
                self._finish(record, FAIL, f"connect: {exc.os_error!r}")
            else:
                self._finish(record, UNKNOWN, f"resend refused after sending: {exc.os_error!r}")
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            self._finish(record, UNKNOWN, repr(exc))
        return None

    async def get(self, key: str) -> tuple[Op, int | None]:
        """A read (linearizable by default); also returns the value's revision (0 if absent)."""
        record = self._start("get", key)
        path = f"/v1/kv/{key}?consistency={self.consistency}"
        answer = await self._request(record, "GET", path)
        if answer is None:
            return record, None
        code, body, headers = answer
        status, error = classify(code, "get")
        self._finish(record, status, error)
        if status != OK:
            return record, None
        if code == 404:
            record.output = {"value": None}
            return record, 0
        record.output = {"value": body.decode()}
        return record, int(headers["X-Raftpod-Revision"])

    def _headers(self, record: Op, value: str) -> dict[str, str]:
        """``X-Request-Id`` for half of the writes (exactly-once); noted in the record."""
        if self.rng.random() >= REQUEST_ID_SHARE:
            return {}
        record.request_id = value  # unique, so it names the request
        return {"X-Request-Id": value}

    async def put(self, key: str) -> Op:
        value = self._value()
        record = self._start("put", key, value=value)
        headers = self._headers(record, value)
        answer = await self._request(
            record, "PUT", f"/v1/kv/{key}", data=value.encode(), headers=headers
        )
        if answer is not None:
            self._finish(record, *classify(answer[0], "put"))
        return record

    async def cas(self, key: str, use_txn: bool) -> Op | None:
        """Read, then swap in a new value if the key still holds what was read."""
        read, revision = await self.get(key)
        if revision is None:
            return None
        expected = None if read.output is None else read.output["value"]
        new = self._value()
        record = self._start("cas", key, expected=expected, new=new)
        headers = self._headers(record, new)
        if not use_txn:
            path = f"/v1/kv/{key}?prev_revision={revision}"
            answer = await self._request(record, "PUT", path, data=new.encode(), headers=headers)
            if answer is not None:
                self._finish(record, *classify(answer[0], "cas"))
            return record
        compare = (
            {"target": "version", "op": "=", "key": key, "value": 0}
            if expected is None
            else {"target": "value", "op": "=", "key": key, "value": expected}
        )
        body = {"compare": [compare], "success": [{"op": "put", "key": key, "value": new}]}
        answer = await self._request(record, "POST", "/v1/txn", json=body, headers=headers)
        if answer is None:
            return record
        status, error = classify(answer[0], "cas")
        if status == OK and not _txn_succeeded(answer[1]):
            status, error = FAIL, "compare_failed"
        self._finish(record, status, error)
        return record

    async def run(self, keys: Sequence[str], deadline: float) -> None:
        """Random operations until ``deadline`` (time.monotonic()); one at a time."""
        while time.monotonic() < deadline:
            self.refused = False
            key = self.rng.choice(list(keys))
            roll = self.rng.random()
            if roll < 0.3:
                await self.get(key)
            elif roll < 0.65:
                await self.put(key)
            else:
                await self.cas(key, use_txn=self.rng.random() < 0.4)
            await asyncio.sleep(self.rng.uniform(*THINK) + (REFUSED_BACKOFF if self.refused else 0))


def _txn_succeeded(body: bytes) -> bool:
    doc: dict[str, Any] = json.loads(body)
    return bool(doc["succeeded"])
