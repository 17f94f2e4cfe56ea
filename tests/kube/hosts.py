"""The DNS names cluster DNS would serve, as /etc/hosts lines for each pod.

Follows the Kubernetes DNS spec for what can be written statically: a pod with
hostname and subdomain gets `<hostname>.<subdomain>.<ns>.svc.cluster.local`
when a headless service of that name selects it (and it is ready, unless the
service publishes not-ready addresses); a headless service name resolves to
those pod IPs; a ClusterIP service name resolves to one ready pod behind it,
since there is no kube-proxy here. Names relative to the pod's own namespace
are added too, as the search path would make them work.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

DOMAIN = "cluster.local"


@dataclass(frozen=True)
class PodAddress:
    namespace: str
    name: str
    ip: str
    ready: bool
    labels: Mapping[str, str]
    hostname: str
    subdomain: str


def _selects(service: Mapping[str, Any], pod: PodAddress) -> bool:
    selector = service["spec"].get("selector") or {}
    return (
        service["metadata"]["namespace"] == pod.namespace
        and bool(selector)
        and all(pod.labels.get(k) == v for k, v in selector.items())
    )


def _names(base: str, namespace: str, viewer_namespace: str) -> list[str]:
    """FQDN, `.svc` form and, within the viewer's namespace, the short forms."""
    names = [f"{base}.{namespace}.svc.{DOMAIN}", f"{base}.{namespace}.svc", f"{base}.{namespace}"]
    if namespace == viewer_namespace:
        names.append(base)
    return names


def records(
    pods: Sequence[PodAddress], services: Sequence[Mapping[str, Any]], viewer_namespace: str
) -> list[tuple[str, list[str]]]:
    """(ip, names) pairs visible from a pod in `viewer_namespace`."""
    out: list[tuple[str, list[str]]] = []
    for svc in sorted(services, key=lambda s: (s["metadata"]["namespace"], s["metadata"]["name"])):
        name, namespace = svc["metadata"]["name"], svc["metadata"]["namespace"]
        headless = svc["spec"].get("clusterIP") == "None"
        publish_all = bool(svc["spec"].get("publishNotReadyAddresses"))
        members = [p for p in pods if _selects(svc, p) and (p.ready or (headless and publish_all))]
        members.sort(key=lambda p: p.name)
        if not headless:
            members = [p for p in members if p.ready][:1]
        for pod in members:
            out.append((pod.ip, _names(name, namespace, viewer_namespace)))
            if headless and pod.subdomain == name and pod.hostname:
                out.append((pod.ip, _names(f"{pod.hostname}.{name}", namespace, viewer_namespace)))
    return out


def hosts_file(
    own: PodAddress, pods: Sequence[PodAddress], services: Sequence[Mapping[str, Any]]
) -> str:
    """The whole /etc/hosts text for pod `own`."""
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
    own_names = [own.hostname]
    if own.subdomain:
        own_names = (
            _names(f"{own.hostname}.{own.subdomain}", own.namespace, own.namespace) + own_names
        )
    lines.append(f"{own.ip}\t{' '.join(dict.fromkeys(own_names))}")
    for ip, names in records(pods, services, own.namespace):
        lines.append(f"{ip}\t{' '.join(names)}")
    return "\n".join(lines) + "\n"
