"""A kubelet that runs pod containers as local processes, for three fake nodes.

It registers Nodes kubelet-1..3 (one zone each), keeps them healthy with Lease
renewals and status heartbeats, and runs a level-triggered sync loop: every
SYNC_PERIOD it lists the pods bound to its nodes, starts a `PodWorker` for
each new one, terminates deleted ones (then removes the object with grace 0
so controllers recreate it), refreshes every pod's /etc/hosts (and that of
each `cluster_client` namespace), and runs the volume provisioner.
"""

from __future__ import annotations

import datetime
import json
import logging
import threading
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.kube import apis, provisioner
from tests.kube.hosts import PodAddress, hosts_file
from tests.kube.launch import ImageTable
from tests.kube.netns import PodNetwork, write_in_place
from tests.kube.podruntime import PodHost, PodWorker
from tests.kube.podspec import Json, secret_values

log = logging.getLogger(__name__)

SYNC_PERIOD = 0.3
HEARTBEAT_PERIOD = 5.0
LEASE_SECONDS = 40
KUBELET_VERSION = "v1.35.4"


def micro_time() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _raw(call: Any, *args: Any, **kwargs: Any) -> Json:
    """Call a client method and return the JSON body as plain dicts (camelCase)."""
    response = call(*args, _preload_content=False, **kwargs)
    data: Json = json.loads(response.data)
    return data


class ApiReader:
    """Reads ConfigMaps, Secrets and claim directories for pod workers."""

    def __init__(self, core: Any) -> None:
        self.core = core

    def _get(self, call: Any, *args: Any) -> Json | None:
        try:
            return _raw(call, *args)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def config_map(self, namespace: str, name: str) -> dict[str, str] | None:
        obj = self._get(self.core.read_namespaced_config_map, name, namespace)
        return None if obj is None else dict(obj.get("data") or {})

    def secret(self, namespace: str, name: str) -> dict[str, str] | None:
        obj = self._get(self.core.read_namespaced_secret, name, namespace)
        return None if obj is None else secret_values(obj.get("data"))

    def claim_path(self, namespace: str, claim: str) -> Path | None:
        pvc = self._get(self.core.read_namespaced_persistent_volume_claim, claim, namespace)
        if pvc is None or pvc.get("status", {}).get("phase") != "Bound":
            return None
        pv = self._get(self.core.read_persistent_volume, pvc["spec"]["volumeName"])
        if pv is None:
            return None
        source = pv["spec"].get("hostPath") or pv["spec"].get("local") or {}
        return Path(source["path"]) if source.get("path") else None


class ProcessKubelet:
    """Three nodes' worth of kubelet, plus the provisioner, in background threads."""

    def __init__(
        self,
        api: client.ApiClient,
        network: PodNetwork,
        images: ImageTable,
        root: Path,
        node_count: int = 3,
    ) -> None:
        self.core = apis.core(api)
        self.coordination = apis.coordination(api)
        self.storage = apis.storage(api)
        self.network = network
        self.root = root
        self.volume_root = root / "volumes"
        self.nodes = [f"kubelet-{i}" for i in range(1, node_count + 1)]
        self.host = PodHost(
            core=self.core,
            network=network,
            images=images,
            reader=ApiReader(self.core),
            root=root,
            node_ip=network.gateway,
        )
        self.workers: dict[str, PodWorker] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._hosts_lock = threading.Lock()
        self._clients: dict[str, tuple[str, PodAddress]] = {}  # namespace -> (netns, address)
        self.sync_errors = 0

    # --- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        self.volume_root.mkdir(parents=True, exist_ok=True)
        provisioner.ensure_storage_class(self.storage)
        for index, name in enumerate(self.nodes):
            self._register(name, f"zone-{chr(ord('a') + index)}")
        self._heartbeat()
        for target, name in (
            (self._sync_loop, "kubelet-sync"),
            (self._heartbeat_loop, "kubelet-heartbeat"),
        ):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the loops, kill every pod (grace 0) and wait for their workers."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=timeout)
        for worker in list(self.workers.values()):
            worker.terminate(0.0)
        for worker in list(self.workers.values()):
            worker.join(timeout=timeout)
        self.workers.clear()

    # --- nodes --------------------------------------------------------------------------

    def _register(self, name: str, zone: str) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "labels": {
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "topology.kubernetes.io/zone": zone,
                },
            },
        }
        try:
            self.core.create_node(body)
        except ApiException as exc:
            if exc.status != 409:
                raise
        lease = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": name, "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": name, "leaseDurationSeconds": LEASE_SECONDS},
        }
        try:
            self.coordination.create_namespaced_lease("kube-node-lease", lease)
        except ApiException as exc:
            if exc.status != 409:
                raise

    def _node_status(self, name: str) -> Json:
        now = micro_time()[:19] + "Z"
        resources = {"cpu": "8", "memory": "16Gi", "pods": "110", "ephemeral-storage": "100Gi"}
        conditions = [
            ("Ready", "True", "KubeletReady"),
            ("MemoryPressure", "False", "KubeletHasSufficientMemory"),
            ("DiskPressure", "False", "KubeletHasNoDiskPressure"),
            ("PIDPressure", "False", "KubeletHasSufficientPID"),
        ]
        return {
            "status": {
                "capacity": resources,
                "allocatable": resources,
                "addresses": [
                    {"type": "InternalIP", "address": self.network.gateway},
                    {"type": "Hostname", "address": name},
                ],
                "conditions": [
                    {
                        "type": kind,
                        "status": status,
                        "reason": reason,
                        "lastHeartbeatTime": now,
                        "lastTransitionTime": now,
                    }
                    for kind, status, reason in conditions
                ],
                "nodeInfo": {
                    "machineID": name,
                    "systemUUID": name,
                    "bootID": name,
                    "kernelVersion": "process",
                    "osImage": "raftpod process kubelet",
                    "containerRuntimeVersion": "process://1",
                    "kubeletVersion": KUBELET_VERSION,
                    "kubeProxyVersion": "",
                    "operatingSystem": "linux",
                    "architecture": "amd64",
                },
            }
        }

    def _heartbeat(self) -> None:
        for name in self.nodes:
            self.coordination.patch_namespaced_lease(
                name, "kube-node-lease", {"spec": {"renewTime": micro_time()}}
            )
            self.core.patch_node_status(name, self._node_status(name))

    def _heartbeat_loop(self) -> None:
        while not self._stop.wait(HEARTBEAT_PERIOD):
            try:
                self._heartbeat()
            except Exception:
                log.exception("node heartbeat failed")

    # --- pods ---------------------------------------------------------------------------

    def _sync_loop(self) -> None:
        while not self._stop.wait(SYNC_PERIOD):
            try:
                self.sync()
            except Exception:
                self.sync_errors += 1
                log.exception("kubelet sync failed")

    def sync(self) -> None:
        """One pass of the level-triggered loop."""
        pods = _raw(self.core.list_pod_for_all_namespaces)["items"]
        mine = [p for p in pods if p["spec"].get("nodeName") in self.nodes]
        present = {p["metadata"]["uid"]: p for p in mine}
        for uid, pod in present.items():
            worker = self.workers.get(uid)
            meta = pod["metadata"]
            if meta.get("deletionTimestamp"):
                if worker is None:
                    self._delete_now(pod)
                else:
                    worker.terminate(float(meta.get("deletionGracePeriodSeconds") or 0))
            elif worker is None:
                worker = PodWorker(self.host, pod)
                self.workers[uid] = worker
                worker.start()
        for uid, worker in list(self.workers.items()):
            pod = present.get(uid)
            if pod is None:
                worker.terminate(0.0)
            # A worker that ended on its own (a kubelet error) keeps its Failed pod.
            if worker.finished.is_set() and (
                pod is None or pod["metadata"].get("deletionTimestamp")
            ):
                del self.workers[uid]
                if pod is not None:
                    self._delete_now(pod)
        self._refresh_hosts()
        provisioner.reconcile(
            self.core,
            _raw(self.core.list_persistent_volume_claim_for_all_namespaces)["items"],
            _raw(self.core.list_persistent_volume)["items"],
            self.volume_root,
        )

    def _delete_now(self, pod: Json) -> None:
        meta = pod["metadata"]
        try:
            self.core.delete_namespaced_pod(
                meta["name"],
                meta["namespace"],
                grace_period_seconds=0,
                body=client.V1DeleteOptions(
                    grace_period_seconds=0, preconditions=client.V1Preconditions(uid=meta["uid"])
                ),
            )
        except ApiException as exc:
            if exc.status not in (404, 409):
                raise

    def cluster_client(self, namespace: str) -> str:
        """A network namespace on the pod bridge that sees cluster DNS like a pod of `namespace`.

        Created on first use and kept until the network stops; its hosts file is
        refreshed with the pods' (and written once now, so it is current at once).
        """
        with self._hosts_lock:
            client_ = self._clients.get(namespace)
            if client_ is None:
                hostname = f"in-cluster-{namespace}"
                netns, ip = self.network.add_sandbox(hostname)
                address = PodAddress(namespace, hostname, ip, True, {}, hostname, "")
                client_ = self._clients[namespace] = (netns, address)
        self._refresh_hosts()
        return client_[0]

    def _refresh_hosts(self) -> None:
        with self._hosts_lock:
            targets = [(c[0], c[1]) for c in self._clients.values()]
            pods = []
            for worker in list(self.workers.values()):
                if not worker.ip or not worker.netns:
                    continue
                meta = worker.pod["metadata"]
                own = PodAddress(
                    namespace=meta["namespace"],
                    name=meta["name"],
                    ip=worker.ip,
                    ready=worker.pod_ready,
                    labels=meta.get("labels") or {},
                    hostname=worker.hostname,
                    subdomain=worker.pod["spec"].get("subdomain", ""),
                )
                pods.append(own)
                targets.append((worker.netns, own))
            if not targets:
                return
            services = _raw(self.core.list_service_for_all_namespaces)["items"]
            for netns, own in targets:
                path = self.network.hosts_path(netns)
                if path.parent.exists():
                    write_in_place(path, hosts_file(own, pods, services))
