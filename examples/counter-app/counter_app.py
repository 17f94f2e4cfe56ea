"""A counter service that keeps its state in its raftpod sidecar, and does leader-only work.

The sidecar's app API is on the pod's own loopback (``RAFTPOD_API_URL``, which
the operator injects as ``http://127.0.0.1:7001``). Two patterns:

* **A counter by compare-and-set**: read ``counter`` with its revision, write
  the next value with ``?prev_revision=R``, and start again on 409 (another
  pod won the race). Each write carries an ``X-Request-Id``, so retrying it
  after a timeout or a leader change is exactly-once.
* **Leader-only work**: every ``TICK_SECONDS`` the app asks ``GET /v1/leader``;
  only the pod whose sidecar leads (``is_self``) writes the ``leader-work``
  key. No second election: the Raft leader is the app's leader.

HTTP (``PORT``, default 8080): ``POST /increment`` -> ``{"value": n}``,
``GET /count`` -> ``{"value": n}``, ``GET /status`` -> who leads and how
much leader-only work this pod did, ``GET /healthz``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import uuid
from typing import Any

import aiohttp
from aiohttp import web

COUNTER_KEY = "counter"
LEADER_WORK_KEY = "leader-work"
TICK_SECONDS = 1.0
WRITE_DEADLINE_SECONDS = 10.0  # a write that cannot finish in time is answered 503
RETRY_PAUSE_SECONDS = 0.2
MAX_CAS_ROUNDS = 50
RETRYABLE = {502, 503, 504}  # no leader yet, no quorum, unknown outcome: retry the same id

log = logging.getLogger("counter-app")


class SidecarUnavailable(RuntimeError):
    """The sidecar did not complete the call before the deadline."""


class Counter:
    """The app's state: a session to its own sidecar and what the leader loop saw."""

    def __init__(self, session: aiohttp.ClientSession, api_url: str, pod: str) -> None:
        self.session = session
        self.api = api_url.rstrip("/")
        self.pod = pod
        self.is_leader = False
        self.leader_id: str | None = None
        self.term = 0
        self.leader_ticks = 0

    async def _call(
        self,
        method: str,
        path: str,
        *,
        deadline: float,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes, str | None]:
        """One sidecar call, retried (same headers, so the same request id) until `deadline`."""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SidecarUnavailable(f"{method} {path}: no answer before the deadline")
            try:
                async with self.session.request(
                    method,
                    self.api + path,
                    data=data,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=remaining),
                ) as resp:
                    body = await resp.read()
                    if resp.status not in RETRYABLE:
                        return resp.status, body, resp.headers.get("X-Raftpod-Revision")
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(min(RETRY_PAUSE_SECONDS, max(0.0, deadline - time.monotonic())))

    async def read(self, deadline: float) -> tuple[int, int]:
        """(value, revision) of the counter; (0, 0) while it does not exist."""
        status, body, revision = await self._call("GET", f"/v1/kv/{COUNTER_KEY}", deadline=deadline)
        if status == 404:
            return 0, 0
        if status != 200 or revision is None:
            raise SidecarUnavailable(f"read {COUNTER_KEY}: HTTP {status}: {body[:200]!r}")
        return int(body), int(revision)

    async def increment(self) -> int:
        """Add one by compare-and-set; the value this call wrote."""
        deadline = time.monotonic() + WRITE_DEADLINE_SECONDS
        for _ in range(MAX_CAS_ROUNDS):
            value, revision = await self.read(deadline)
            headers = {"X-Request-Id": uuid.uuid4().hex}
            status, body, _ = await self._call(
                "PUT",
                f"/v1/kv/{COUNTER_KEY}?prev_revision={revision}",
                deadline=deadline,
                data=str(value + 1).encode(),
                headers=headers,
            )
            if status == 200:
                return value + 1
            if status != 409:
                raise SidecarUnavailable(f"write {COUNTER_KEY}: HTTP {status}: {body[:200]!r}")
        raise SidecarUnavailable(f"{MAX_CAS_ROUNDS} compare-and-set rounds lost to other writers")

    async def lead_when_leader(self) -> None:
        """Forever: ask who leads; only the leader's app writes the leader-work record."""
        while True:
            try:
                await self._leader_tick()
            except (SidecarUnavailable, aiohttp.ClientError, TimeoutError, ValueError) as exc:
                self.is_leader = False
                log.info("leader check failed: %s", exc)
            await asyncio.sleep(TICK_SECONDS)

    async def _leader_tick(self) -> None:
        deadline = time.monotonic() + TICK_SECONDS * 3
        status, body, _ = await self._call("GET", "/v1/leader", deadline=deadline)
        if status != 200:
            raise SidecarUnavailable(f"GET /v1/leader: HTTP {status}")
        leader = json.loads(body)
        self.leader_id, self.term = leader.get("leader_id"), int(leader.get("term") or 0)
        was_leader, self.is_leader = self.is_leader, bool(leader.get("is_self"))
        if self.is_leader != was_leader:
            log.info("leader=%s is_self=%s term=%s", self.leader_id, self.is_leader, self.term)
        if not self.is_leader:
            return
        record = json.dumps({"pod": self.pod, "term": self.term, "at": time.time()}).encode()
        status, body, _ = await self._call(
            "PUT", f"/v1/kv/{LEADER_WORK_KEY}", deadline=deadline, data=record
        )
        if status == 200:
            self.leader_ticks += 1


def json_response(payload: Any, status: int = 200) -> web.Response:
    return web.json_response(payload, status=status)


async def increment(request: web.Request) -> web.Response:
    counter: Counter = request.app["counter"]
    try:
        return json_response({"value": await counter.increment(), "pod": counter.pod})
    except SidecarUnavailable as exc:
        return json_response({"error": "unavailable", "message": str(exc)}, 503)


async def count(request: web.Request) -> web.Response:
    counter: Counter = request.app["counter"]
    try:
        value, _ = await counter.read(time.monotonic() + WRITE_DEADLINE_SECONDS)
    except SidecarUnavailable as exc:
        return json_response({"error": "unavailable", "message": str(exc)}, 503)
    return json_response({"value": value})


async def status(request: web.Request) -> web.Response:
    counter: Counter = request.app["counter"]
    return json_response(
        {
            "pod": counter.pod,
            "is_leader": counter.is_leader,
            "leader_id": counter.leader_id,
            "term": counter.term,
            "leader_ticks": counter.leader_ticks,
            "version": os.environ.get("APP_VERSION", ""),
        }
    )


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


def build_app(api_url: str, pod: str) -> web.Application:
    app = web.Application()
    app.router.add_post("/increment", increment)
    app.router.add_get("/count", count)
    app.router.add_get("/status", status)
    app.router.add_get("/healthz", healthz)

    async def lifecycle(app: web.Application) -> Any:
        session = aiohttp.ClientSession()
        counter = Counter(session, api_url, pod)
        app["counter"] = counter
        leader_loop = asyncio.create_task(counter.lead_when_leader())
        yield
        leader_loop.cancel()
        await asyncio.gather(leader_loop, return_exceptions=True)
        await session.close()

    app.cleanup_ctx.append(lifecycle)
    return app


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    api_url = os.environ.get("RAFTPOD_API_URL", "http://127.0.0.1:7001")
    pod = os.environ.get("POD_NAME") or os.environ.get("HOSTNAME", "counter-app")
    port = int(os.environ.get("PORT", "8080"))
    web.run_app(build_app(api_url, pod), host="0.0.0.0", port=port, print=None)


if __name__ == "__main__":
    main()
