"""The admin-API client and the Kubernetes client against real HTTP servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from raftpod_operator.kube import KubeApi, KubeError, resource_path
from raftpod_operator.sidecar_client import AdminClient, AdminError

TOKEN = "s3cret"


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


@pytest.fixture
async def sidecar() -> AsyncIterator[tuple[str, list[tuple[str, str, Any]], asyncio.Event]]:
    """A stand-in admin API that checks the token and records every call."""
    calls: list[tuple[str, str, Any]] = []
    release = asyncio.Event()

    @web.middleware
    async def auth(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.json_response({"error": "unauthorized", "message": "token"}, status=401)
        body = await request.json() if request.can_read_body else None
        calls.append((request.method, request.path, body))
        return await handler(request)

    async def status(_: web.Request) -> web.Response:
        return web.json_response({"id": "c-0", "role": "leader", "term": 3})

    async def members(_: web.Request) -> web.Response:
        return web.json_response({"error": "not_leader", "message": "ask c-1"}, status=409)

    async def ok(_: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def hang(_: web.Request) -> web.Response:
        await release.wait()
        return web.json_response({})

    app = web.Application(middlewares=[auth])
    app.router.add_get("/admin/status", status)
    app.router.add_post("/admin/members", members)
    app.router.add_post("/admin/members/{id}/promote", ok)
    app.router.add_delete("/admin/members/{id}", ok)
    app.router.add_post("/admin/transfer-leadership", ok)
    app.router.add_post("/admin/snapshot", hang)
    runner, url = await serve(app)
    try:
        yield url, calls, release
    finally:
        release.set()
        await runner.cleanup()


async def test_admin_calls_carry_the_token_and_bodies(
    session: aiohttp.ClientSession, sidecar: tuple[str, list[Any], asyncio.Event]
) -> None:
    url, calls, _ = sidecar
    client = AdminClient(session, token=TOKEN)
    assert (await client.status(url))["role"] == "leader"
    await client.transfer_leadership(url, "c-2")
    await client.promote(url, "c-3")
    await client.remove_member(url, "c-4")
    assert calls == [
        ("GET", "/admin/status", None),
        ("POST", "/admin/transfer-leadership", {"to": "c-2"}),
        ("POST", "/admin/members/c-3/promote", {}),
        ("DELETE", "/admin/members/c-4", None),
    ]


async def test_admin_errors_carry_the_sidecars_code(
    session: aiohttp.ClientSession, sidecar: tuple[str, list[Any], asyncio.Event]
) -> None:
    url, calls, _ = sidecar
    with pytest.raises(AdminError) as info:
        await AdminClient(session, token=TOKEN).add_learner(url, "c-3", "c-3.x:7000")
    assert (info.value.status, info.value.code) == (409, "not_leader")
    assert calls[-1][2] == {"id": "c-3", "address": "c-3.x:7000", "voter": False}
    with pytest.raises(AdminError) as denied:
        await AdminClient(session, token="wrong").status(url)
    assert denied.value.code == "unauthorized"


async def test_admin_calls_are_bounded_in_time(
    session: aiohttp.ClientSession, sidecar: tuple[str, list[Any], asyncio.Event]
) -> None:
    url, _, _ = sidecar
    with pytest.raises(AdminError) as info:
        await AdminClient(session, token=TOKEN, timeout=0.3).snapshot(url)
    assert info.value.code == "timeout"


async def test_unreachable_member(session: aiohttp.ClientSession) -> None:
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    with pytest.raises(AdminError) as info:
        await AdminClient(session, token=TOKEN).status(f"http://127.0.0.1:{port}")
    assert info.value.code == "unreachable"


def test_resource_paths() -> None:
    assert resource_path("v1", "Pod", "ns", "c-0") == "/api/v1/namespaces/ns/pods/c-0"
    assert (
        resource_path("apps/v1", "StatefulSet", "ns") == "/apis/apps/v1/namespaces/ns/statefulsets"
    )
    assert resource_path("raftpod.io/v1alpha1", "RaftCluster", "ns", "c") == (
        "/apis/raftpod.io/v1alpha1/namespaces/ns/raftclusters/c"
    )


async def test_kube_api_apply_get_list_delete(session: aiohttp.ClientSession) -> None:
    """Against a stand-in API server: the requests the operator makes, as the server sees them."""
    seen: list[dict[str, Any]] = []
    store: dict[str, Any] = {}

    async def handle(request: web.Request) -> web.Response:
        body = await request.text()
        seen.append(
            {
                "method": request.method,
                "path": request.path,
                "query": dict(request.query),
                "type": request.content_type,
                "auth": request.headers.get("Authorization"),
            }
        )
        if request.method == "PATCH":
            store[request.path] = json.loads(body)
            return web.json_response(store[request.path])
        if request.method == "GET" and request.path in store:
            return web.json_response(store[request.path])
        if request.method == "GET" and request.path.endswith("/pods"):
            return web.json_response({"items": [{"metadata": {"name": "c-0"}}]})
        if request.method == "DELETE" and request.path in store:
            del store[request.path]
            return web.json_response({"status": "Success"})
        if request.path.endswith("/forbidden"):
            return web.json_response({"message": "no"}, status=403)
        return web.json_response({"reason": "NotFound"}, status=404)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner, url = await serve(app)
    try:
        api = KubeApi(session, url, auth_header=lambda: "Bearer tok")
        cm = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "c-config", "namespace": "ns"},
            "data": {"a": "1"},
        }
        assert (await api.apply(cm))["data"] == {"a": "1"}
        assert seen[0]["query"] == {"fieldManager": "raftpod-operator", "force": "true"}
        assert seen[0]["type"] == "application/apply-patch+yaml"
        assert seen[0]["auth"] == "Bearer tok"
        assert (await api.get("v1", "ConfigMap", "ns", "c-config")) == cm
        assert await api.get("v1", "ConfigMap", "ns", "other") is None
        pods = await api.list("v1", "Pod", "ns", "app=x")
        assert [p["metadata"]["name"] for p in pods] == ["c-0"]
        assert seen[-1]["query"] == {"labelSelector": "app=x"}
        assert await api.delete("v1", "ConfigMap", "ns", "c-config") is True
        assert await api.delete("v1", "ConfigMap", "ns", "c-config") is False
        with pytest.raises(KubeError) as info:
            await api.get("v1", "Secret", "ns", "forbidden")
        assert info.value.status == 403
    finally:
        await runner.cleanup()
