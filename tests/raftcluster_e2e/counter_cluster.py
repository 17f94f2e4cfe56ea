"""A RaftCluster running the example counter app, and the reads and waits the e2e tests share.

The app image name matches the test kubelet's ``*raftpod*`` rule, which runs
the container's own command with the venv first on PATH; the command is the
example's entry point in this checkout. Election timeouts are longer than
the defaults because the machine is shared: a pause of a loaded process must
not look like a dead leader, or "leadership moves at most once per pod" and
the write-gap figures would measure the machine, not the operator.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.kube import apis
from tests.kube.binaries import REPO_ROOT

GROUP, VERSION, PLURAL, KIND = "raftpod.io", "v1alpha1", "raftclusters", "RaftCluster"
APP_IMAGE = "ghcr.io/raftpod/counter-app:0.1.0"
APP_PORT = 8080
COUNTER_APP = REPO_ROOT / "examples" / "counter-app" / "counter_app.py"
POLL_SECONDS = 0.5

Json = dict[str, Any]
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # pod IPs: no proxy


def app_template(version: str = "1") -> Json:
    """The user's pod template: one app container; the operator injects the sidecar."""
    probe = {"httpGet": {"path": "/healthz", "port": APP_PORT}, "periodSeconds": 1}
    return {
        "metadata": {"labels": {"app": "counter"}},
        "spec": {
            "terminationGracePeriodSeconds": 5,
            "containers": [
                {
                    "name": "app",
                    "image": APP_IMAGE,
                    "command": ["python", str(COUNTER_APP)],
                    "env": [
                        {"name": "PORT", "value": str(APP_PORT)},
                        {"name": "APP_VERSION", "value": version},
                        {
                            "name": "POD_NAME",
                            "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                        },
                    ],
                    "ports": [{"name": "http", "containerPort": APP_PORT}],
                    "readinessProbe": probe,
                }
            ],
        },
    }


def counter_cluster(name: str, replicas: int = 3, **spec: Any) -> Json:
    """The RaftCluster object; `spec` entries override the defaults given here."""
    body: Json = {
        "replicas": replicas,
        "template": app_template(),
        "sidecar": {"electionTimeoutMs": "1000:2000", "heartbeatMs": 100},
        "storage": {"size": "64Mi"},
        **spec,
    }
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {"name": name},
        "spec": body,
    }


def is_ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


class Clusters:
    """RaftCluster objects of one namespace."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.api = api
        self.namespace = namespace
        self._objs: Any = client.CustomObjectsApi(api)

    def create(self, body: Json) -> Json:
        result: Json = self._objs.create_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, body
        )
        return result

    def get(self, name: str) -> Json | None:
        try:
            result: Json = self._objs.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, name
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return result

    def status(self, name: str) -> Json:
        return dict((self.get(name) or {}).get("status") or {})

    def patch_spec(self, name: str, spec: Json) -> Json:
        result: Json = self._objs.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name, {"spec": spec}
        )
        return result

    def delete(self, name: str) -> None:
        self._objs.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name)

    def events(self, name: str) -> list[Any]:
        """Events about the RaftCluster `name`, oldest first."""
        items = (
            apis.core(self.api)
            .list_namespaced_event(
                self.namespace,
                field_selector=f"involvedObject.kind={KIND},involvedObject.name={name}",
            )
            .items
        )
        return sorted(items, key=lambda e: e.last_timestamp or e.event_time or e.metadata.name)

    def pods(self, name: str) -> list[Any]:
        selector = f"app.kubernetes.io/instance={name}"
        pods = apis.core(self.api).list_namespaced_pod(self.namespace, label_selector=selector)
        return sorted(pods.items, key=lambda p: p.metadata.name)

    def ready_ips(self, name: str) -> list[str]:
        """What a Service would route to: ready pods that are not terminating."""
        return [
            p.status.pod_ip
            for p in self.pods(name)
            if is_ready(p) and not p.metadata.deletion_timestamp and p.status.pod_ip
        ]

    def wait_status(
        self, name: str, check: Callable[[Json], bool], what: str, timeout: float
    ) -> Json:
        """Poll the status until `check` holds; fail with the last status seen."""
        seen: list[Json] = [{}]

        def fetch() -> Json | None:
            seen[0] = self.status(name)
            return seen[0] if check(seen[0]) else None

        try:
            found: Json = poll(fetch, f"{name}: {what}", timeout)
        except PollTimeout as exc:
            brief = {k: seen[0].get(k) for k in ("phase", "message", "leader", "members")}
            raise PollTimeout(f"{exc}; last status: {brief}") from None
        return found

    def wait_running(self, name: str, members: int, timeout: float = 180.0) -> Json:
        """Running, a leader, and `members` healthy members."""

        def healthy(status: Json) -> bool:
            members_ok = [m for m in status.get("members") or [] if m.get("healthy")]
            return (
                status.get("phase") == "Running"
                and bool(status.get("leader"))
                and len(members_ok) == members
                and status.get("readyReplicas") == members
            )

        return self.wait_status(name, healthy, f"Running with {members} healthy members", timeout)


class PollTimeout(AssertionError):
    """A wait ran out of time; the message carries the last value seen."""


def poll(fetch: Callable[[], Any], what: str, timeout: float) -> Any:
    """Call `fetch` until it returns something truthy, for at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            value = fetch()
        except (ApiException, OSError) as exc:
            value, last = None, exc
        if value:
            return value
        if time.monotonic() >= deadline:
            raise PollTimeout(f"timed out after {timeout:.0f}s waiting for {what} (last: {last})")
        time.sleep(POLL_SECONDS)


def app_call(pod_ip: str, path: str, *, post: bool = False, timeout: float = 15.0) -> Json:
    """Call the counter app in a pod (the host reaches pod IPs over the bridge)."""
    request = urllib.request.Request(
        f"http://{pod_ip}:{APP_PORT}{path}",
        data=b"" if post else None,
        method="POST" if post else "GET",
    )
    try:
        with _DIRECT.open(request, timeout=timeout) as resp:
            body: Json = json.loads(resp.read())
            return body
    except urllib.error.HTTPError as exc:
        raise AssertionError(f"{path} on {pod_ip}: HTTP {exc.code}: {exc.read()[:300]!r}") from exc
