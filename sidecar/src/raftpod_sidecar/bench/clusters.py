"""The two systems under test as local 3-process clusters, and their CPU/RSS sampling.

``RaftpodCluster`` starts the same node commands as ``raftpod-sidecar
dev-cluster`` (one process per node) but keeps each node's process so that the
benchmark can sample it, kill -9 the leader and restart it. ``EtcdCluster``
starts three etcd members with default flags (fsync on) on 127.0.0.1. Both use
fresh data dirs under a directory the caller owns, every process in its own
process group, and ``stop()`` kills what is left: use them as context managers.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import random
import shutil
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from ..devcluster import PORT_STRIDE, node_commands, node_ports, node_ready, port_free
from .targets import SystemName

HOST = "127.0.0.1"
READY_TIMEOUT_S = 30.0
STOP_GRACE_S = 5.0
POLL_S = 0.05
CONTROL_TIMEOUT_S = 2.0
PORT_SEARCH_TRIES = 50
# below Linux's default ephemeral range (32768-60999), so no outgoing connection
# takes a block's port between the check and the server's bind
PORT_LOW, PORT_HIGH = 10_000, 32_000
SAMPLE_EVERY_S = 0.2

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# What a control request can raise: refused/reset/timed out, bad JSON, a broken response.
HTTP_ERRORS = (OSError, ValueError, http.client.HTTPException)


class ClusterError(RuntimeError):
    """A cluster did not start or answer in time; the message names the node and its log."""


# -- control-plane HTTP -------------------------------------------------------------


def http_json(method: str, url: str, doc: Any = None, timeout: float = CONTROL_TIMEOUT_S) -> Any:
    """One JSON request; raises one of ``HTTP_ERRORS`` on failure."""
    data = None if doc is None else json.dumps(doc).encode()
    request = urllib.request.Request(method=method, url=url, data=data)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body = response.read()
    return json.loads(body) if body else None


# -- /proc sampling -----------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far (0 if it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent not idle since boot (from /proc/stat), for contention."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return 0.0
    ticks = [int(f) for f in fields]
    idle = ticks[3] + ticks[4]  # idle + iowait
    return (sum(ticks[:8]) - idle) / _CLOCK_TICKS


@dataclass
class NodeUsage:
    """One node's resource use over a sampled interval."""

    name: str
    cpu_cores: float
    rss_max_mib: float
    rss_end_mib: float


class ResourceSampler:
    """Samples the nodes' CPU and RSS from /proc while a workload runs (a ``with`` block).

    CPU is measured from entering to leaving the block; RSS peaks are sampled on a
    thread. After the block: ``usage()`` per node, ``machine_cores`` machine-wide
    (servers, generators and other tenants), ``wall_s``.
    """

    def __init__(self, nodes: dict[str, int]) -> None:
        self.nodes = nodes
        self.wall_s = 0.0
        self.machine_cores = 0.0
        self._stop = threading.Event()
        self._rss_max = dict.fromkeys(nodes, 0)
        self._rss_end = dict.fromkeys(nodes, 0)
        self._cpu = dict.fromkeys(nodes, 0.0)
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> ResourceSampler:
        self._started = time.monotonic()
        self._busy_start = machine_busy_seconds()
        self._cpu = {name: -cpu_seconds(pid) for name, pid in self.nodes.items()}
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        for name, pid in self.nodes.items():
            self._cpu[name] += cpu_seconds(pid)
            self._rss_end[name] = rss_bytes(pid)
        self.wall_s = max(time.monotonic() - self._started, 1e-9)
        self.machine_cores = (machine_busy_seconds() - self._busy_start) / self.wall_s
        self._sample()

    def _loop(self) -> None:
        while not self._stop.wait(SAMPLE_EVERY_S):
            self._sample()

    def _sample(self) -> None:
        for name, pid in self.nodes.items():
            self._rss_max[name] = max(self._rss_max[name], rss_bytes(pid))

    def usage(self) -> list[NodeUsage]:
        """Each node's CPU (in cores) and RSS over the block."""
        return [
            NodeUsage(
                name=name,
                cpu_cores=self._cpu[name] / self.wall_s if self.wall_s else 0.0,
                rss_max_mib=self._rss_max[name] / 2**20,
                rss_end_mib=self._rss_end[name] / 2**20,
            )
            for name in self.nodes
        ]


# -- ports --------------------------------------------------------------------------


def free_port_base(span: int) -> int:
    """A random port P such that P..P+span-1 on 127.0.0.1 could all be bound just now
    (random, so that concurrent runs and other tests rarely pick the same block)."""
    rng = random.Random()
    for _ in range(PORT_SEARCH_TRIES):
        base = rng.randrange(PORT_LOW, PORT_HIGH - span)
        if all(port_free(HOST, base + i) for i in range(span)):
            return base
    raise ClusterError(f"no block of {span} free ports found after {PORT_SEARCH_TRIES} tries")


# -- clusters -----------------------------------------------------------------------


@dataclass
class Member:
    """One server process: its name, command, URL, data and (while running) process."""

    name: str
    command: list[str]
    client_url: str
    log_path: Path
    data_dir: Path
    env: dict[str, str] | None = field(default=None, repr=False)  # None: this process's
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise ClusterError(f"{self.name} is not running")
        return self.proc.pid


class Cluster:
    """Three server processes on 127.0.0.1; the subclasses say how to ask them things."""

    system: SystemName

    def __init__(self, members: list[Member]) -> None:
        self.members = members

    def __enter__(self) -> Cluster:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def endpoints(self) -> tuple[str, ...]:
        return tuple(m.client_url for m in self.members)

    def pids(self) -> dict[str, int]:
        return {m.name: m.pid for m in self.members if m.proc is not None}

    def start(self) -> None:
        """Start every member and wait until the cluster serves."""
        for index in range(len(self.members)):
            self.spawn(index)
        self.wait_ready()

    def spawn(self, index: int) -> None:
        """Start member ``index`` (on whatever data it has) without waiting for it."""
        member = self.members[index]
        log = member.log_path.open("ab")
        try:
            member.proc = subprocess.Popen(
                member.command,
                env=member.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()

    def kill(self, index: int) -> None:
        """kill -9 member ``index`` (its whole process group) and reap it."""
        member = self.members[index]
        if member.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(member.proc.pid, signal.SIGKILL)
        member.proc.wait()
        member.proc = None

    def wipe(self, index: int) -> None:
        """kill -9 member ``index`` and delete its data (it restarts as a blank node)."""
        self.kill(index)
        shutil.rmtree(self.members[index].data_dir, ignore_errors=True)

    def restart(self, index: int) -> None:
        """Start a killed member again on its old data and wait until all serve."""
        self.spawn(index)
        self.wait_ready()

    def stop(self) -> None:
        """SIGTERM every member's group, then SIGKILL what outlives the grace period."""
        for member in self.members:
            if member.proc is not None and member.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(member.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for index, member in enumerate(self.members):
            if member.proc is None:
                continue
            with contextlib.suppress(subprocess.TimeoutExpired):
                member.proc.wait(max(0.1, deadline - time.monotonic()))
            self.kill(index)

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Poll until every running member says it is ready and a leader is known."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for member in self.members:
                if member.proc is not None and member.proc.poll() is not None:
                    raise ClusterError(
                        f"{self.system} {member.name} exited with {member.proc.returncode};"
                        f" see {member.log_path}"
                    )
            running = [i for i, m in enumerate(self.members) if m.proc is not None]
            if all(self.member_ready(i) for i in running) and self.leader_index() is not None:
                return
            time.sleep(POLL_S)
        raise ClusterError(
            f"{self.system} cluster not ready within {timeout:.0f}s; logs in"
            f" {self.members[0].log_path.parent}"
        )

    def member_ready(self, index: int) -> bool:
        raise NotImplementedError

    def current_leader(self) -> int:
        """Index of the member that leads, waiting until the cluster is ready if none is
        known; ClusterError if there is still none."""
        leader = self.leader_index()
        if leader is None:
            self.wait_ready()
            leader = self.leader_index()
        if leader is None:
            raise ClusterError(f"{self.system}: no leader")
        return leader

    def leader_index(self) -> int | None:
        """Index of the member that leads, as the running members see it; None if unknown."""
        raise NotImplementedError

    def transfer_leadership(self, to_index: int) -> None:
        """Ask the leader to hand over to member ``to_index``; returns when done."""
        raise NotImplementedError

    def log_indexes(self, index: int) -> tuple[int, int] | None:
        """Member ``index``'s (commit, applied) log indexes; None if it does not answer."""
        raise NotImplementedError


def node_environment(pycache: Path) -> dict[str, str]:
    """This process's environment, with bytecode cached under ``pycache``.

    Nodes should start as they do from the image, whose ``pip install`` compiled the
    bytecode. Under ``PYTHONDONTWRITEBYTECODE`` an editable install's modules would be
    compiled from source at every (re)start, ~0.2 s of a node's ~0.9 s start on a
    2-core machine, counted in the catch-up and snapshot-install times.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


class RaftpodCluster(Cluster):
    """A 3-node raftpod cluster: the dev-cluster's node commands, one process each."""

    system: SystemName = "raftpod"

    def __init__(self, workdir: Path, nodes: int = 3, extra_args: Sequence[str] = ()) -> None:
        data_dir = workdir / "raftpod"
        data_dir.mkdir(parents=True, exist_ok=True)
        base = free_port_base(PORT_STRIDE * nodes)
        commands = node_commands(nodes, data_dir, base, HOST, list(extra_args))
        self.admin_urls = [f"http://{HOST}:{node_ports(base, i)[2]}" for i in range(1, nodes + 1)]
        env = node_environment(workdir / "pycache")
        super().__init__(
            [
                Member(
                    name=f"n{i}",
                    command=command,
                    client_url=f"http://{HOST}:{node_ports(base, i)[1]}",
                    log_path=data_dir / f"n{i}.log",
                    data_dir=data_dir / f"n{i}",  # as node_commands lays it out
                    env=env,
                )
                for i, command in enumerate(commands, start=1)
            ]
        )

    def member_ready(self, index: int) -> bool:
        return node_ready(self.admin_urls[index], CONTROL_TIMEOUT_S)

    def leader_index(self) -> int | None:
        for index, member in enumerate(self.members):
            if member.proc is None:
                continue
            try:
                status = http_json("GET", f"{self.admin_urls[index]}/admin/status")
            except HTTP_ERRORS:
                continue
            names = [m.name for m in self.members]
            leader = status.get("leader")
            if leader in names and self.members[names.index(leader)].proc is not None:
                return names.index(leader)
        return None

    def log_indexes(self, index: int) -> tuple[int, int] | None:
        try:
            status = http_json("GET", f"{self.admin_urls[index]}/admin/status")
        except HTTP_ERRORS:
            return None
        return int(status["commit_index"]), int(status["applied_index"])

    def rejoin_blank(self, index: int, via: int) -> None:
        """Replace member ``index``'s disk the supported way: remove it from the cluster,
        kill it, wipe its data, and start it blank with ``--join`` (through member ``via``)
        so that it is added back as a learner. Returns without waiting for it."""
        member = self.members[index]
        self.wipe(index)
        http_json("DELETE", f"{self.admin_urls[via]}/admin/members/{member.name}", timeout=10.0)
        at = member.command.index("--peers")
        member.command[at : at + 2] = ["--join", self.admin_urls[via]]
        self.spawn(index)

    def term(self, index: int) -> int:
        """Member ``index``'s current term."""
        return int(http_json("GET", f"{self.admin_urls[index]}/admin/status")["term"])

    def take_snapshot(self, index: int) -> int:
        """Make member ``index`` snapshot now; the snapshot's size in bytes."""
        answer = http_json("POST", f"{self.admin_urls[index]}/admin/snapshot", {}, timeout=60.0)
        return int(answer["bytes"])

    def transfer_leadership(self, to_index: int) -> None:
        leader = self.leader_index()
        if leader is None:
            raise ClusterError("raftpod: no leader to transfer from")
        http_json(
            "POST",
            f"{self.admin_urls[leader]}/admin/transfer-leadership",
            {"to": self.members[to_index].name},
            timeout=10.0,
        )


class EtcdCluster(Cluster):
    """A 3-member etcd cluster with default flags (fsync on), fresh data dirs."""

    system: SystemName = "etcd"

    def __init__(self, binary: Path, workdir: Path, members: int = 3) -> None:
        data_dir = workdir / "etcd"
        data_dir.mkdir(parents=True, exist_ok=True)
        base = free_port_base(2 * members)
        peer_urls = [f"http://{HOST}:{base + 2 * i + 1}" for i in range(members)]
        initial = ",".join(f"e{i + 1}={url}" for i, url in enumerate(peer_urls))
        built = []
        for i in range(members):
            name = f"e{i + 1}"
            client = f"http://{HOST}:{base + 2 * i}"
            command = [
                str(binary),
                f"--name={name}",
                f"--data-dir={data_dir / name}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer_urls[i]}",
                f"--initial-advertise-peer-urls={peer_urls[i]}",
                f"--initial-cluster={initial}",
                "--initial-cluster-state=new",
                f"--initial-cluster-token=raftpod-bench-{base}",
            ]
            built.append(Member(name, command, client, data_dir / f"{name}.log", data_dir / name))
        super().__init__(built)
        self._member_ids: dict[str, int] = {}

    def member_ready(self, index: int) -> bool:
        try:
            health = http_json("GET", f"{self.members[index].client_url}/health")
        except HTTP_ERRORS:
            return False
        return isinstance(health, dict) and health.get("health") == "true"

    def _status(self, index: int) -> dict[str, Any] | None:
        try:
            url = f"{self.members[index].client_url}/v3/maintenance/status"
            status = http_json("POST", url, {})
        except HTTP_ERRORS:
            return None
        return status if isinstance(status, dict) else None

    def leader_index(self) -> int | None:
        for index, member in enumerate(self.members):
            if member.proc is None:
                continue
            status = self._status(index)
            leader = int(status.get("leader", 0)) if status else 0
            if not leader or (not self._member_ids and not self._learn_ids(index)):
                continue
            found = self._index_of(leader)
            if found is not None:
                return found
        return None

    def _learn_ids(self, index: int) -> bool:
        url = f"{self.members[index].client_url}/v3/cluster/member/list"
        try:
            listing = http_json("POST", url, {})
        except HTTP_ERRORS:
            return False
        for item in listing.get("members", []):
            self._member_ids[item["name"]] = int(item["ID"])
        return True

    def _index_of(self, member_id: int) -> int | None:
        for index, member in enumerate(self.members):
            if self._member_ids.get(member.name) == member_id and member.proc is not None:
                return index
        return None

    def log_indexes(self, index: int) -> tuple[int, int] | None:
        status = self._status(index)
        if status is None:
            return None
        return int(status.get("raftIndex", 0)), int(status.get("raftAppliedIndex", 0))

    def transfer_leadership(self, to_index: int) -> None:
        leader = self.leader_index()
        if leader is None:
            raise ClusterError("etcd: no leader to transfer from")
        target = self.members[to_index].name
        http_json(
            "POST",
            f"{self.members[leader].client_url}/v3/maintenance/transfer-leadership",
            {"targetID": str(self._member_ids[target])},
            timeout=10.0,
        )
