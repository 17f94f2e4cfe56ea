"""The operator's Kubernetes API client: server-side apply, get, list, delete; injected.

A thin aiohttp wrapper over the REST paths of the few kinds the operator owns.
Credentials come from the in-cluster service account or the kubeconfig (read
by the ``kubernetes`` package's loaders, refreshed per request). Writes of
owned objects are server-side apply with field manager ``raftpod-operator``.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp

from raftpod_operator.manifests import FIELD_MANAGER
from raftpod_operator.spec import GROUP, KIND, PLURAL, VERSION

TIMEOUT = aiohttp.ClientTimeout(total=30)

PLURALS: dict[tuple[str, str], str] = {
    ("v1", "ConfigMap"): "configmaps",
    ("v1", "Secret"): "secrets",
    ("v1", "Service"): "services",
    ("v1", "Pod"): "pods",
    ("v1", "PersistentVolumeClaim"): "persistentvolumeclaims",
    ("apps/v1", "StatefulSet"): "statefulsets",
    ("policy/v1", "PodDisruptionBudget"): "poddisruptionbudgets",
    ("networking.k8s.io/v1", "NetworkPolicy"): "networkpolicies",
    (f"{GROUP}/{VERSION}", KIND): PLURAL,
}


class KubeError(RuntimeError):
    """The API server refused a request."""

    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        super().__init__(f"{method} {path}: HTTP {status}: {body[:300]}")
        self.status = status


def resource_path(api_version: str, kind: str, namespace: str, name: str | None = None) -> str:
    """The REST path of a namespaced object (or its collection when ``name`` is None)."""
    plural = PLURALS[(api_version, kind)]
    root = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    path = f"{root}/namespaces/{quote(namespace)}/{plural}"
    return f"{path}/{quote(name)}" if name else path


class KubeApi:
    """Async calls to one API server with one set of credentials."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        server: str,
        *,
        auth_header: Callable[[], str | None] = lambda: None,
        ssl_context: ssl.SSLContext | bool = True,
    ) -> None:
        self._session = session
        self._server = server.rstrip("/")
        self._auth_header = auth_header
        self._ssl = ssl_context

    async def _request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> tuple[int, Any]:
        headers = {"Accept": "application/json"}
        auth = self._auth_header()
        if auth:
            headers["Authorization"] = auth
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = json.dumps(body)
        url = self._server + path + (f"?{urlencode(query)}" if query else "")
        async with self._session.request(
            method, url, data=data, headers=headers, ssl=self._ssl, timeout=TIMEOUT
        ) as response:
            text = await response.text()
            if response.status == 404:
                return 404, None
            if response.status >= 400:
                raise KubeError(method, path, response.status, text)
            return response.status, json.loads(text) if text else None

    async def apply(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Server-side apply ``obj`` as ``raftpod-operator``, taking over conflicting fields."""
        meta = obj["metadata"]
        path = resource_path(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])
        query = {"fieldManager": FIELD_MANAGER, "force": "true"}
        status, result = await self._request(
            "PATCH", path, query=query, body=obj, content_type="application/apply-patch+yaml"
        )
        if status == 404:
            raise KubeError("PATCH", path, status, "not found")
        return dict(result)

    async def get(
        self, api_version: str, kind: str, namespace: str, name: str
    ) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        _, result = await self._request("GET", resource_path(api_version, kind, namespace, name))
        return dict(result) if result is not None else None

    async def list(
        self, api_version: str, kind: str, namespace: str, selector: str
    ) -> list[dict[str, Any]]:
        """Objects of ``kind`` in ``namespace`` matching the label ``selector``."""
        path = resource_path(api_version, kind, namespace)
        _, result = await self._request("GET", path, query={"labelSelector": selector})
        return list((result or {}).get("items") or [])

    async def delete(
        self, api_version: str, kind: str, namespace: str, name: str, uid: str | None = None
    ) -> bool:
        """Delete (only the object with ``uid`` when given); False when it was already gone."""
        body: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if uid:
            body["preconditions"] = {"uid": uid}
        status, _ = await self._request(
            "DELETE", resource_path(api_version, kind, namespace, name), body=body
        )
        return status != 404

    async def server_version(self) -> tuple[str, str]:
        """(major, minor) of the API server, from ``/version``."""
        _, result = await self._request("GET", "/version")
        return str(result.get("major", "0")), str(result.get("minor", "0"))


def load_configuration() -> Any:
    """The in-cluster service account, else the current kubeconfig context, as a
    ``kubernetes.client.Configuration``; ``ConfigException`` when there is neither."""
    from kubernetes import client, config

    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    return configuration


def from_environment(session: aiohttp.ClientSession) -> KubeApi:
    """A `KubeApi` with the in-cluster service account, else the current kubeconfig context."""
    configuration = load_configuration()
    context: ssl.SSLContext | bool
    if configuration.verify_ssl:
        context = ssl.create_default_context(cafile=configuration.ssl_ca_cert)
    else:
        context = False
    if configuration.cert_file:
        assert isinstance(context, ssl.SSLContext)
        context.load_cert_chain(configuration.cert_file, configuration.key_file)

    def auth_header() -> str | None:
        # the kubernetes client (v29+) keeps "Bearer <token>" under "BearerToken"
        value = configuration.get_api_key_with_prefix("BearerToken", alias="authorization")
        return str(value) if value else None

    return KubeApi(session, configuration.host, auth_header=auth_header, ssl_context=context)
