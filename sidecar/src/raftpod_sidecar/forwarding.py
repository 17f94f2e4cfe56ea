"""A follower hands writes and leader-only admin calls to the leader, over HTTP.

Mechanism: the follower re-sends the client's request (method, path, query,
body, ``X-Request-Id``) to the leader's *admin* listener, app routes under the
internal prefix ``/internal/app`` and admin routes at their own path, with the
admin bearer token and, under TLS, this node's client certificate: the leader
checks it exactly like any admin call. The leader's response (status, JSON or
bytes, ``X-Raftpod-Revision``) is relayed unchanged, so a client cannot tell
which node did the work.

The leader's admin URL comes from the replicated directory: every new leader
proposes "my admin API is at URL" as its first entry (see ``envelope``). A
forwarded request carries ``X-Raftpod-Forwarded``; a node that receives one
and is no longer the leader answers 503 instead of forwarding again (no
loops), and the follower retries with the new leader until its deadline.

Outcomes, like etcd's and Consul's clients: a failure to *connect* means
nothing was sent, so it is retried (503 ``no_leader`` once the deadline
passes). Once the request may have left, a lost connection or a timeout is an
*unknown* outcome (504), because the leader may have applied it; the request
is sent again only if it carries ``X-Request-Id``, which the leader's session
table makes exactly-once. aiohttp's own silent resend of an "idempotent" PUT
or DELETE on a dropped connection is switched off (``leader_session``): a
compare-and-set or a delete is not idempotent, and a resend that is refused
would pass for "never sent".
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable

import aiohttp
from aiohttp import web

from .node import NoLeaderError, RaftNode, UnknownOutcomeError

FORWARDED_HEADER = "X-Raftpod-Forwarded"
INTERNAL_APP_PREFIX = "/internal/app"
_RELAYED_REQUEST_HEADERS = ("Content-Type", "X-Request-Id")
_RELAYED_RESPONSE_HEADERS = ("Content-Type", "X-Raftpod-Revision")
POOLED_IDLE_SECONDS = 15.0
"""Idle pooled connections to the leader are closed after this long, well below the
leader's own keep-alive (aiohttp's 75 s): the leader never times out an idle connection
just as a write goes out on it, which would make a needless unknown outcome."""


def is_forwarded(request: web.Request) -> bool:
    return FORWARDED_HEADER in request.headers


class SentRequestLostError(aiohttp.ClientConnectionError):
    """The connection broke after the request may have been sent (never resent for us)."""


async def _no_resend(
    request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
) -> aiohttp.ClientResponse:
    """Turn a broken connection into ``SentRequestLostError``, which aiohttp never resends.

    Connect failures pass unchanged: nothing was sent, so they are safe to retry.
    """
    try:
        return await handler(request)
    except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError):
        raise
    except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError) as exc:
        raise SentRequestLostError(repr(exc)) from exc


def leader_session() -> aiohttp.ClientSession:
    """A pooled client session for requests to the leader that aiohttp never resends."""
    connector = aiohttp.TCPConnector(limit=64, keepalive_timeout=POOLED_IDLE_SECONDS)
    return aiohttp.ClientSession(connector=connector, middlewares=(_no_resend,))


class Forwarder:
    """Relays requests to the leader; owns one pooled client session."""

    def __init__(
        self,
        node: RaftNode,
        token: Callable[[], str | None],
        ssl_context: Callable[[], ssl.SSLContext | None],
    ) -> None:
        self.node = node
        self.token = token
        self.ssl_context = ssl_context
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = leader_session()
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _leader_url(self, deadline: float) -> str:
        node = self.node
        if not await node.wait_condition(lambda: node.leader_admin_url() is not None, deadline):
            if node.leader:
                raise NoLeaderError(
                    f"leader {node.leader!r} has not announced its admin address yet"
                )
            raise NoLeaderError("no leader is known; the cluster may have lost quorum")
        url = node.leader_admin_url()
        assert url is not None
        return url

    async def forward(
        self, request: web.Request, body: bytes, deadline: float, app_route: bool
    ) -> web.Response:
        """Send ``request`` to the leader and relay its answer; bounded by ``deadline``."""
        if is_forwarded(request):
            raise NoLeaderError("this node is no longer the leader; retry")
        headers = {h: request.headers[h] for h in _RELAYED_REQUEST_HEADERS if h in request.headers}
        headers[FORWARDED_HEADER] = self.node.id
        token = self.token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        path = (INTERNAL_APP_PREFIX if app_route else "") + request.path_qs
        # The leader's session table makes an app write with X-Request-Id exactly-once.
        resend_safe = app_route and "X-Request-Id" in headers
        sent = False  # whether some attempt may have reached the leader
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if sent:
                    raise UnknownOutcomeError(
                        "the leader could not be reached again after the request was sent; "
                        "the outcome is unknown: retry with the same X-Request-Id"
                    )
                raise NoLeaderError("could not reach the leader before the deadline")
            leader = self.node.leader
            url = await self._leader_url(deadline)
            try:
                async with self.session().request(
                    request.method,
                    url + path,
                    data=body,
                    headers=headers,
                    ssl=self.ssl_context() or False,  # re-read: certificates rotate
                    timeout=aiohttp.ClientTimeout(total=max(0.05, deadline - time.monotonic())),
                ) as answer:
                    payload = await answer.read()
                    if answer.status == 503 and self.node.leader == leader:
                        # Refused, not applied (the leader lost its role or quorum).
                        await self.node.wait_leader_change(leader, deadline)
                        if self.node.leader != leader:
                            continue
                    relayed = {
                        h: answer.headers[h]
                        for h in _RELAYED_RESPONSE_HEADERS
                        if h in answer.headers
                    }
                    return web.Response(status=answer.status, body=payload, headers=relayed)
            except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError):
                pass  # nothing was sent: try again, with a new leader if one appears
            except (TimeoutError, aiohttp.ClientError, asyncio.IncompleteReadError) as exc:
                if not resend_safe:
                    raise UnknownOutcomeError(
                        f"lost the connection to the leader after forwarding ({exc!r}); "
                        "the outcome is unknown: retry with the same X-Request-Id"
                    ) from None
                sent = True
            await self.node.wait_leader_change(leader, min(deadline, time.monotonic() + 0.1))
