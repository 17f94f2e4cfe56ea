"""The /etc/hosts records that stand in for cluster DNS (pure, no cluster needed)."""

from __future__ import annotations

from typing import Any

from tests.kube.hosts import PodAddress, hosts_file, records


def pod(name: str, ip: str, ready: bool = True, namespace: str = "ns") -> PodAddress:
    return PodAddress(namespace, name, ip, ready, {"app": "db"}, name, "db")


def service(name: str, headless: bool, publish: bool = False) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ns"},
        "spec": {
            "clusterIP": "None" if headless else "10.96.0.10",
            "selector": {"app": "db"},
            "publishNotReadyAddresses": publish,
        },
    }


def test_headless_service_names_each_ready_pod_and_itself() -> None:
    pods = [pod("db-0", "10.0.0.2"), pod("db-1", "10.0.0.3", ready=False)]
    found = dict((names[0], ip) for ip, names in records(pods, [service("db", True)], "ns"))
    assert found == {
        "db.ns.svc.cluster.local": "10.0.0.2",
        "db-0.db.ns.svc.cluster.local": "10.0.0.2",
    }


def test_publish_not_ready_addresses_includes_unready_pods() -> None:
    pods = [pod("db-0", "10.0.0.2"), pod("db-1", "10.0.0.3", ready=False)]
    lines = records(pods, [service("db", True, publish=True)], "ns")
    assert (
        "10.0.0.3",
        ["db-1.db.ns.svc.cluster.local", "db-1.db.ns.svc", "db-1.db.ns", "db-1.db"],
    ) in lines


def test_cluster_ip_service_maps_to_one_ready_pod_and_other_namespaces_get_no_short_names() -> None:
    pods = [pod("db-0", "10.0.0.2", ready=False), pod("db-1", "10.0.0.3")]
    assert records(pods, [service("api", False)], "elsewhere") == [
        ("10.0.0.3", ["api.ns.svc.cluster.local", "api.ns.svc", "api.ns"])
    ]


def test_hosts_file_starts_with_localhost_and_own_names() -> None:
    own = pod("db-0", "10.0.0.2")
    lines = hosts_file(own, [own], []).splitlines()
    assert lines[0] == "127.0.0.1\tlocalhost"
    assert lines[2].split("\t") == [
        "10.0.0.2",
        "db-0.db.ns.svc.cluster.local db-0.db.ns.svc db-0.db.ns db-0.db db-0",
    ]
