"""Host processes versus processes in the cluster network.

A real operator runs in a pod and resolves `<pod>.<svc>.<ns>.svc.cluster.local`
through cluster DNS. The host has no cluster DNS, so tests must run such a
process with `KubeEnv.in_cluster_argv`: it then resolves pod names, reaches
pod IPs and the API server exactly as a pod would.
"""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from tests.kube.binaries import binary
from tests.kube.env import KubeEnv
from tests.kube.workloads import PORT, app_statefulset, deploy, wait_ready

pytestmark = pytest.mark.kube

# Resolve a name, then fetch a URL: what an operator does to call a pod.
CLIENT = """
import socket, sys, urllib.request
print(socket.gethostbyname(sys.argv[1]))
print(urllib.request.urlopen(sys.argv[2], timeout=10).read().decode())
"""


def test_in_cluster_processes_resolve_pods_and_reach_the_api_server(
    kube_env: KubeEnv, kube_namespace: str
) -> None:
    deploy(kube_env.api, kube_namespace, "dns", app_statefulset("dns", 1, volume=False))
    (pod,) = wait_ready(kube_env.api, kube_namespace, "dns", 1)
    fqdn = f"dns-0.dns.{kube_namespace}.svc.cluster.local"
    with pytest.raises(socket.gaierror):  # the host has no cluster DNS
        socket.getaddrinfo(fqdn, PORT)

    clean_env = {"PATH": "/usr/bin:/bin"}  # no proxy variables
    url = f"http://dns-0.dns:{PORT}/"  # a short name, relative to the client's namespace
    done = subprocess.run(
        kube_env.in_cluster_argv([sys.executable, "-c", CLIENT, fqdn, url], kube_namespace),
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    address, body = done.stdout.splitlines()[:2]
    assert address == pod.status.pod_ip
    assert f'"pod_name": "{pod.metadata.name}"' in body

    kubectl = [str(binary("kubectl")), f"--kubeconfig={kube_env.in_cluster_kubeconfig}"]
    jsonpath = "-o=jsonpath={.status.podIP}"
    got = subprocess.run(
        kube_env.in_cluster_argv([*kubectl, "get", "pod", "dns-0", "-n", kube_namespace, jsonpath]),
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env,
        check=False,
    )
    assert got.returncode == 0, got.stderr
    assert got.stdout == pod.status.pod_ip
