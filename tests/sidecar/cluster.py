"""Real sidecar processes on loopback for the integration tests.

``Cluster`` starts ``python -m raftpod_sidecar.cli`` per node with free ports,
waits for a leader by polling ``/admin/status`` with a deadline, and kills
every process it started in ``close()`` (the fixtures always call it).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.ports import free_ports

T = TypeVar("T")

FAST_FLAGS = (
    "--election-timeout-ms", "150:300",
    "--heartbeat-ms", "50",
    "--request-timeout-ms", "2000",
    "--log-level", "info",
)  # fmt: skip
HTTP_TIMEOUT = 10.0
# RAFTPOD_TEST_EVENT_LOOP=asyncio|uvloop runs every node on that loop (default: auto)


def poll(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.05) -> T:
    """``check()``'s first truthy value, polled until ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            value = check()
        except (requests.RequestException, ValueError, KeyError) as exc:
            value, last = None, exc
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last!r})")


def http(method: str, url: str, **kwargs: Any) -> requests.Response:
    kwargs.setdefault("timeout", HTTP_TIMEOUT)
    return requests.request(method, url, **kwargs)


def metric_total(
    admin_url: str, sample: str, where: Callable[[dict[str, str]], bool] = lambda _: True
) -> float:
    """The sum of the ``sample`` values on ``admin_url``/metrics whose labels pass ``where``."""
    text = http("GET", admin_url + "/metrics").text
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == sample and where(s.labels)
    )


@dataclass
class Node:
    id: str
    peer_port: int
    app_port: int
    admin_port: int
    data_dir: Path
    log_path: Path
    args: list[str] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    admin_scheme: str = "http"
    admin_kwargs: dict[str, Any] = field(default_factory=dict)  # e.g. cert=, verify= for TLS
    proc: subprocess.Popen[bytes] | None = None

    @property
    def app(self) -> str:
        return f"http://127.0.0.1:{self.app_port}"

    @property
    def admin(self) -> str:
        return f"{self.admin_scheme}://127.0.0.1:{self.admin_port}"

    @property
    def peer_address(self) -> str:
        return f"127.0.0.1:{self.peer_port}"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "raftpod_sidecar.cli",
            "--id", self.id,
            "--data-dir", str(self.data_dir),
            "--peer-listen", self.peer_address,
            "--api-listen", f"127.0.0.1:{self.app_port}",
            "--admin-listen", f"127.0.0.1:{self.admin_port}",
            "--advertise-admin", self.admin,
            *FAST_FLAGS,
            "--event-loop", os.environ.get("RAFTPOD_TEST_EVENT_LOOP", "auto"),
            *self.args,
        ]  # fmt: skip

    def start(self) -> None:
        assert not self.alive, f"{self.id} is already running"
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, env=child_env()
            )

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=15)

    def status(self) -> dict[str, Any]:
        answer = http(
            "GET", self.admin + "/admin/status", timeout=2, headers=self.headers,
            **self.admin_kwargs,
        )  # fmt: skip
        doc: dict[str, Any] = answer.json()
        return doc

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


def child_env() -> dict[str, str]:
    """This environment without RAFTPOD_* (a node reads those as flags), unbuffered."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAFTPOD_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Cluster:
    """N voters started with ``--peers``; more nodes can join with ``add``."""

    def __init__(
        self,
        root: Path,
        size: int,
        extra_args: tuple[str, ...] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.extra_args = list(extra_args)
        self.headers = headers or {}
        self.nodes: dict[str, Node] = {}
        for i in range(1, size + 1):
            self._new_node(f"n{i}")
        peers = ",".join(f"{n.id}={n.peer_address}" for n in self.nodes.values())
        for node in self.nodes.values():
            node.args = ["--peers", peers, *self.extra_args]

    def _new_node(self, node_id: str) -> Node:
        peer, app, admin = free_ports(3)
        node = Node(
            node_id, peer, app, admin, self.root / node_id, self.root / f"{node_id}.log",
            headers=self.headers,
        )  # fmt: skip
        self.nodes[node_id] = node
        return node

    def __getitem__(self, node_id: str) -> Node:
        return self.nodes[node_id]

    def alive(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.alive]

    def start(self) -> Cluster:
        for node in self.nodes.values():
            node.start()
        return self

    def add(self, node_id: str, join: str) -> Node:
        node = self._new_node(node_id)
        node.args = ["--join", join, *self.extra_args]
        node.start()
        return node

    def leader(self, timeout: float = 20.0, among: list[Node] | None = None) -> Node:
        """The node every live member (or ``among``) agrees leads, once it does."""

        def agreed() -> Node | None:
            nodes = among if among is not None else self.alive()
            views = {n.id: n.status() for n in nodes}
            leaders = {v["leader"] for v in views.values()}
            if len(leaders) != 1:
                return None
            (leader,) = leaders
            if leader not in views or views[leader]["role"] != "leader":
                return None
            return self.nodes[leader]

        return poll(agreed, timeout, "an agreed leader", interval=0.1)

    def wait_serving(self, timeout: float = 20.0) -> None:
        """Every node answers its status; one that exited fails at once, with its log."""

        def serving() -> bool:
            for node in self.nodes.values():
                if not node.alive:
                    raise AssertionError(f"{node.id} exited:\n{node.log_text()[-2000:]}")
            return all(node.status() for node in self.nodes.values())

        poll(serving, timeout, "every node to serve")

    def followers(self, leader: Node) -> list[Node]:
        return [n for n in self.alive() if n.id != leader.id]

    def close(self) -> None:
        for node in self.nodes.values():
            with contextlib.suppress(Exception):
                node.kill()

    def dump_logs(self) -> str:
        return "\n".join(f"--- {n.id}\n{n.log_text()[-4000:]}" for n in self.nodes.values())


@contextlib.contextmanager
def running(
    root: Path,
    size: int,
    extra_args: tuple[str, ...] = (),
    headers: dict[str, str] | None = None,
) -> Iterator[Cluster]:
    """A started cluster that is always killed afterwards; logs are printed on failure."""
    cluster = Cluster(root, size, extra_args, headers)
    try:
        cluster.start().wait_serving()
        yield cluster
    except BaseException:
        print(cluster.dump_logs())
        raise
    finally:
        cluster.close()


def ndjson_lines(response: requests.Response, count: int, timeout: float) -> list[dict[str, Any]]:
    """Read ``count`` JSON lines from a streaming response within ``timeout``."""
    deadline = time.monotonic() + timeout
    lines: list[dict[str, Any]] = []
    for raw in response.iter_lines():
        if raw:
            doc = json.loads(raw)
            if doc.get("type") != "progress":
                lines.append(doc)
        if len(lines) >= count or time.monotonic() > deadline:
            break
    return lines
