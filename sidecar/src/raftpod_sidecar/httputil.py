"""What the app and admin HTTP APIs share: JSON errors, request metrics, body limits.

Every error leaves as ``{"error": CODE, "message": ...}``, including the ones
aiohttp raises itself (404 unknown route, 405 wrong method, 413 body too
large), so clients parse one shape. Each request is counted and timed under its
route template (``/v1/kv/{key}``), never the raw path, to bound label
cardinality.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from .metrics import NodeMetrics
from .node import NodeError
from .raft.errors import NotLeaderError, RaftUsageError, TransferInProgressError

log = logging.getLogger("raftpod")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    501: "not_implemented",
    503: "unavailable",
    504: "timeout",
}


class ApiError(Exception):
    """Raised by handlers to answer with a JSON error."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_response(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status)


def b64(data: bytes) -> str:
    """Bytes as they appear in JSON answers (``value_b64``, ``data_b64``)."""
    return base64.b64encode(data).decode()


def json_response(payload: Any, status: int = 200) -> web.Response:
    return web.json_response(payload, status=status)


async def read_json(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 that says what was wrong."""
    raw = await request.read()
    if not raw:
        return {}
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(400, "bad_request", f"body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ApiError(400, "bad_request", "body must be a JSON object")
    return doc


def route_name(request: web.Request) -> str:
    info = request.match_info
    route = info.route if info is not None else None
    if route is None or route.resource is None:
        return "unmatched"
    return route.resource.canonical


def make_middleware(metrics: NodeMetrics) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Metrics for every request and JSON bodies for every error."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        route = route_name(request)
        try:
            response = await handler(request)
        except ApiError as exc:
            response = error_response(exc.status, exc.code, exc.message)
        except NodeError as exc:
            response = error_response(exc.status, exc.code, str(exc))
        except (NotLeaderError, TransferInProgressError) as exc:
            response = error_response(503, "no_leader", f"{exc}; retry shortly")
        except RaftUsageError as exc:
            response = error_response(409, "conflict", str(exc))
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            code = _CODES.get(exc.status, "error")
            message = exc.reason
            if exc.status == 413:
                message = f"request body too large: {exc.text} (--max-request-bytes)"
            elif exc.status == 405:
                message = f"method {request.method} is not allowed on {request.path}"
            elif exc.status == 404:
                message = f"no route for {request.path}"
            response = error_response(exc.status, code, message)
        except Exception as exc:
            log.exception("request failed: %s %s", request.method, request.path)
            response = error_response(500, "internal", f"internal error: {exc!r}")
        metrics.observe_request(route, response.status, time.perf_counter() - started)
        return response

    return middleware
