"""One pod's life on the process kubelet: sandbox, containers, probes, status.

A `PodWorker` thread owns one pod: it creates its network namespace, resolves
volumes, runs init containers (native sidecars are started and kept running),
then the app containers, restarts crashed ones with exponential backoff,
runs probes, and writes the pod status whenever it changes. On `terminate`
it sends SIGTERM, waits the grace period (bounded), then SIGKILL.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import shutil
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes.client.exceptions import ApiException

from tests.kube.launch import ImageTable, container_argv, find_rule, sandbox_argv
from tests.kube.netns import PodNetwork
from tests.kube.podspec import Json, ObjectReader, container_env, container_mounts, volume_paths
from tests.kube.probes import Prober
from tests.kube.procs import LoggedProcess

log = logging.getLogger(__name__)

MAX_GRACE = 15.0
BACKOFF_START = 0.5
BACKOFF_MAX = 10.0
TICK = 0.2


def rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class PodHost:
    """What the kubelet lends each pod worker."""

    core: Any  # kubernetes.client.CoreV1Api
    network: PodNetwork
    images: ImageTable
    reader: ObjectReader
    root: Path
    node_ip: str


class ContainerRuntime:
    """One container: its current process, restart bookkeeping and probes."""

    def __init__(self, spec: Json, kind: str, log_path: Path) -> None:
        self.spec = spec
        self.name: str = spec["name"]
        self.kind = kind  # "init", "sidecar" or "app"
        self.log_path = log_path
        self.proc: LoggedProcess | None = None
        self.restart_count = 0
        self.runs = 0
        self.state: Json = {"waiting": {"reason": "ContainerCreating"}}
        self.last_state: Json = {}
        self.next_start = 0.0
        self.backoff = BACKOFF_START
        self.probes: dict[str, Prober] = {}

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.exit_code() is None

    @property
    def started(self) -> bool:
        startup = self.probes.get("startup")
        return self.running and (startup is None or startup.result)

    @property
    def ready(self) -> bool:
        readiness = self.probes.get("readiness")
        return self.started and (readiness is None or readiness.result)

    @property
    def exited_ok(self) -> bool:
        return "terminated" in self.state and self.state["terminated"]["exitCode"] == 0

    def status(self) -> Json:
        return {
            "name": self.name,
            "image": self.spec.get("image", ""),
            "imageID": "",
            "containerID": f"process://{self.proc.pid}" if self.proc else "",
            "ready": self.ready,
            "started": self.started,
            "restartCount": self.restart_count,
            "state": self.state,
            "lastState": self.last_state,
        }


class PodWorker:
    """Runs one pod until `terminate` is called or the pod disappears."""

    def __init__(self, host: PodHost, pod: Json) -> None:
        meta = pod["metadata"]
        self.host = host
        self.pod = pod
        self.uid: str = meta["uid"]
        self.key = f"{meta['namespace']}/{meta['name']}"
        self.pod_dir = host.root / "pods" / f"{meta['namespace']}_{meta['name']}_{self.uid[:8]}"
        logs = host.root / "logs" / "pods" / meta["namespace"] / meta["name"]
        spec = pod["spec"]
        self.restart_policy: str = spec.get("restartPolicy", "Always")
        self.inits = [
            ContainerRuntime(
                c,
                "sidecar" if c.get("restartPolicy") == "Always" else "init",
                logs / f"{c['name']}.log",
            )
            for c in spec.get("initContainers") or []
        ]
        self.apps = [
            ContainerRuntime(c, "app", logs / f"{c['name']}.log") for c in spec["containers"]
        ]
        self.hostname: str = spec.get("hostname") or meta["name"]
        self.netns = ""
        self.ip = ""
        self.volumes: dict[str, Path] | None = None
        self.init_done = 0
        self.failed_reason = ""
        self.start_time = rfc3339()
        self._grace: float | None = None
        self._stop_requested = threading.Event()
        self.finished = threading.Event()
        self._last_status: Json = {}
        self._transitions: dict[str, tuple[str, str]] = {}
        self._thread = threading.Thread(target=self._run, name=f"pod-{self.key}", daemon=True)

    # --- public API used by the kubelet -------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def terminate(self, grace: float) -> None:
        """Ask the worker to stop its containers within `grace` seconds (bounded)."""
        if self._grace is None:
            self._grace = min(max(grace, 0.0), MAX_GRACE)
        self._stop_requested.set()

    @property
    def pod_ready(self) -> bool:
        return bool(self.ip) and all(c.ready for c in self.apps)

    # --- the loop -----------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self.netns, self.ip = self.host.network.add_sandbox(self.hostname)
            while not self._stop_requested.is_set():
                self._tick()
                self._publish()
                self._stop_requested.wait(TICK)
            self._shutdown(self._grace or 0.0)
        except Exception:
            # Like a kubelet bug: the pod stays Failed until it is deleted.
            log.exception("pod %s failed", self.key)
            self.failed_reason = "KubeletError"
            self._shutdown(0.0)
            with contextlib.suppress(Exception):
                self._publish()
        finally:
            self.finished.set()

    def _tick(self) -> None:
        if self.volumes is None:
            self.volumes = volume_paths(self.pod, self.pod_dir, self.host.reader)
            if self.volumes is None:
                return  # a claim is not bound yet
        for c in self.inits[: self.init_done + 1] + (self.apps if self._init_finished() else []):
            self._reap(c)
        while self.init_done < len(self.inits):
            c = self.inits[self.init_done]
            self._maybe_start(c)
            if not (c.started if c.kind == "sidecar" else c.exited_ok):
                break
            self.init_done += 1
        if self._init_finished():
            for c in [c for c in self.inits if c.kind == "sidecar"] + self.apps:
                self._maybe_start(c)
        for c in self.inits + self.apps:
            self._probe(c)

    def _init_finished(self) -> bool:
        return self.init_done >= len(self.inits)

    def _wants_restart(self, c: ContainerRuntime) -> bool:
        if c.kind == "sidecar":
            return True
        if c.exited_ok:
            return c.kind == "app" and self.restart_policy == "Always"
        return self.restart_policy != "Never"

    def _maybe_start(self, c: ContainerRuntime) -> None:
        if c.running or self.failed_reason:
            return
        if c.runs and not self._wants_restart(c):
            if not c.exited_ok and c.kind == "init":
                self.failed_reason = "InitContainerFailed"
            return
        if time.monotonic() < c.next_start:
            return
        self._start(c)

    def _start(self, c: ContainerRuntime) -> None:
        rule = find_rule(self.host.images, c.spec.get("image", ""))
        if rule is None:
            c.state = {"waiting": {"reason": "ErrImageNeverPull", "message": "image not in table"}}
            return
        assert self.volumes is not None
        try:
            env = container_env(
                self.pod,
                c.spec,
                rule,
                pod_ip=self.ip,
                host_ip=self.host.node_ip,
                reader=self.host.reader,
            )
        except ValueError as exc:  # a missing ConfigMap/Secret key: retry later, like kubelet
            c.state = {"waiting": {"reason": "CreateContainerConfigError", "message": str(exc)}}
            c.next_start = time.monotonic() + BACKOFF_MAX
            return
        argv = sandbox_argv(
            self.netns,
            self.hostname,
            container_mounts(c.spec, self.volumes),
            c.spec.get("workingDir"),
            container_argv(rule, c.spec, env),
        )
        if c.runs:
            c.restart_count += 1
        c.runs += 1
        c.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(c.log_path, "a", encoding="utf-8") as header:
            header.write(f"=== {rfc3339()} start pod uid {self.uid} restart {c.restart_count}\n")
        c.proc = LoggedProcess(f"{self.key}/{c.name}", argv, c.log_path, env=env)
        c.state = {"running": {"startedAt": rfc3339()}}
        for kind in ("startup", "readiness", "liveness"):
            spec = c.spec.get(f"{kind}Probe")
            if spec:
                c.probes[kind] = Prober(
                    spec, c.spec, self.ip, self._exec_argv(c), initially=kind == "liveness"
                )

    def _exec_argv(self, c: ContainerRuntime) -> Callable[[Sequence[str]], list[str]]:
        """An exec probe joins the running container's namespaces, as `kubectl exec` does."""

        def build(command: Sequence[str]) -> list[str]:
            assert c.proc is not None
            return ["nsenter", "-t", str(c.proc.pid), "-m", "-u", "-n", "--", *command]

        return build

    def _reap(self, c: ContainerRuntime) -> None:
        """Record an exited process and schedule its restart with backoff."""
        if c.proc is None or c.running or "running" not in c.state:
            return
        code = c.proc.exit_code()
        assert code is not None
        exit_code = 128 - code if code < 0 else code
        c.state = {
            "terminated": {
                "exitCode": exit_code,
                "reason": "Completed" if exit_code == 0 else "Error",
                "startedAt": c.state["running"]["startedAt"],
                "finishedAt": rfc3339(),
                "containerID": f"process://{c.proc.pid}",
            }
        }
        c.probes.clear()
        if self._wants_restart(c):
            c.last_state = c.state
            c.next_start = time.monotonic() + c.backoff
            c.backoff = min(c.backoff * 2, BACKOFF_MAX)

    def _probe(self, c: ContainerRuntime) -> None:
        """Run due probes; a failed startup or liveness probe restarts the container."""
        if not c.running:
            return
        startup = c.probes.get("startup")
        kinds = ("readiness", "liveness") if startup is None or startup.result else ("startup",)
        for kind in kinds:
            prober = c.probes.get(kind)
            if prober is None or not prober.due():
                continue
            passed = prober.run()
            if kind == "readiness" or passed:
                continue
            if kind == "startup" and prober.failures < prober.failure_threshold:
                continue
            log.info("%s probe failed for %s/%s: restarting", kind, self.key, c.name)
            assert c.proc is not None
            c.proc.stop(grace=self._grace_seconds())
            self._reap(c)
            return

    def _grace_seconds(self) -> float:
        return min(float(self.pod["spec"].get("terminationGracePeriodSeconds") or 30), MAX_GRACE)

    # --- status -------------------------------------------------------------------------

    def _phase(self) -> str:
        if self.failed_reason:
            return "Failed"
        if not self._init_finished() or not any(c.runs for c in self.apps):
            return "Pending"
        if self.restart_policy != "Always" and all(
            "terminated" in c.state and not self._wants_restart(c) for c in self.apps
        ):
            return "Succeeded" if all(c.exited_ok for c in self.apps) else "Failed"
        return "Running"

    def _condition(self, kind: str, ok: bool) -> Json:
        status = "True" if ok else "False"
        previous = self._transitions.get(kind)
        if previous is None or previous[0] != status:
            self._transitions[kind] = (status, rfc3339())
        return {
            "type": kind,
            "status": status,
            "lastProbeTime": None,
            "lastTransitionTime": self._transitions[kind][1],
        }

    def status(self) -> Json:
        ready = self.pod_ready and self._phase() == "Running"
        return {
            "phase": self._phase(),
            "hostIP": self.host.node_ip,
            "hostIPs": [{"ip": self.host.node_ip}],
            "podIP": self.ip,
            "podIPs": [{"ip": self.ip}],
            "startTime": self.start_time,
            "conditions": [
                self._condition("PodReadyToStartContainers", bool(self.netns)),
                self._condition("Initialized", self._init_finished()),
                self._condition("ContainersReady", ready),
                self._condition("Ready", ready),
                self._condition("PodScheduled", True),
            ],
            "initContainerStatuses": [c.status() for c in self.inits],
            "containerStatuses": [c.status() for c in self.apps],
        }

    def _publish(self) -> None:
        status = self.status()
        if status == self._last_status:
            return
        meta = self.pod["metadata"]
        try:
            self.host.core.patch_namespaced_pod_status(
                meta["name"], meta["namespace"], {"status": status}
            )
        except ApiException as exc:
            if exc.status == 404:
                self._stop_requested.set()
                return
            raise
        self._last_status = status

    # --- shutdown -----------------------------------------------------------------------

    def _shutdown(self, grace: float) -> None:
        """App containers first, then sidecars, each group SIGTERM then SIGKILL."""
        deadline = time.monotonic() + grace
        groups = [self.apps + [c for c in self.inits if c.kind == "init"], self.inits]
        for group in groups:
            procs = [c.proc for c in group if c.proc is not None and c.running]
            for proc in procs:
                proc.signal_group(signal.SIGTERM)
            for proc in procs:
                proc.stop(grace=max(deadline - time.monotonic(), 0.0))
        if self.netns:
            self.host.network.remove_sandbox(self.netns)
        shutil.rmtree(self.pod_dir, ignore_errors=True)
