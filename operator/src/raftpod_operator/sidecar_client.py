"""The operator's client for a sidecar's admin API (``:7002``), with bounded timeouts.

Every call carries the operator's bearer token and, when TLS is on, its client
certificate; every call has a total timeout so one hung pod never stalls a
reconcile round. Errors come back as `AdminError` with the sidecar's JSON
``error`` code when it sent one.
"""

from __future__ import annotations

import json
import os
import ssl
import tempfile
from collections.abc import Mapping
from typing import Any

import aiohttp

DEFAULT_TIMEOUT = 5.0
TRANSFER_TIMEOUT = 15.0  # transfer-leadership returns when done: allow a few elections


class AdminError(RuntimeError):
    """An admin call failed: unreachable, timed out, or answered with an error."""

    def __init__(self, url: str, status: int | None, code: str, message: str) -> None:
        super().__init__(f"{url}: {code}: {message}")
        self.url = url
        self.status = status
        self.code = code


def client_ssl_context(ca_pem: str, cert_pem: str, key_pem: str) -> ssl.SSLContext:
    """Trust the cluster CA and present the operator's client certificate."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=ca_pem)
    with tempfile.TemporaryDirectory(prefix="raftpod-op-") as tmp:
        cert_file, key_file = os.path.join(tmp, "tls.crt"), os.path.join(tmp, "tls.key")
        for path, text in ((cert_file, cert_pem), (key_file, key_pem)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
        context.load_cert_chain(cert_file, key_file)
    return context


class AdminClient:
    """Admin API calls against any member, addressed by its base URL."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        token: str | None,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self._session = session
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self._timeout = timeout

    async def _call(
        self,
        method: str,
        url: str,
        body: Mapping[str, Any] | None = None,
        seconds: float | None = None,
    ) -> Any:
        limit = aiohttp.ClientTimeout(total=seconds or self._timeout)
        try:
            async with self._session.request(
                method, url, json=body, headers=self._headers, ssl=self._ssl, timeout=limit
            ) as response:
                text = await response.text()
                payload = _json_or_none(text, response.content_type)
                if response.status >= 400:
                    code = "http_error"
                    message = text[:200]
                    if isinstance(payload, Mapping):
                        code = str(payload.get("error", code))
                        message = str(payload.get("message", message))
                    raise AdminError(url, response.status, code, message)
                return payload
        except TimeoutError:
            raise AdminError(url, None, "timeout", "no answer in time") from None
        except aiohttp.ClientError as exc:
            raise AdminError(url, None, "unreachable", str(exc)) from None

    async def status(self, base: str) -> Any:
        """``GET /admin/status`` (parse it with `status.parse_admin_status`)."""
        return await self._call("GET", f"{base}/admin/status")

    async def transfer_leadership(self, base: str, to: str | None = None) -> Any:
        body = {"to": to} if to else {}
        return await self._call(
            "POST", f"{base}/admin/transfer-leadership", body, seconds=TRANSFER_TIMEOUT
        )

    async def add_learner(self, base: str, member_id: str, address: str) -> Any:
        body = {"id": member_id, "address": address, "voter": False}
        return await self._call("POST", f"{base}/admin/members", body)

    async def promote(self, base: str, member_id: str) -> Any:
        return await self._call("POST", f"{base}/admin/members/{member_id}/promote", {})

    async def remove_member(self, base: str, member_id: str) -> Any:
        return await self._call("DELETE", f"{base}/admin/members/{member_id}")

    async def snapshot(self, base: str) -> Any:
        return await self._call("POST", f"{base}/admin/snapshot", {})

    async def backup(self, base: str, request: Mapping[str, Any], seconds: float) -> Any:
        """``POST /admin/backup {"url", "cluster", "cluster_uid", "retain"}``: snapshot and
        upload; may take long, so its own bound. The answer has ``url``, ``index``, ``bytes``."""
        return await self._call("POST", f"{base}/admin/backup", request, seconds=seconds)


def _json_or_none(text: str, content_type: str) -> Any:
    if "json" not in content_type or not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None
