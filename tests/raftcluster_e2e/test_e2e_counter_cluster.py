"""One RaftCluster running the example counter app, end to end, through its whole life.

The operator runs as the chart's ServiceAccount (conftest); the control plane,
scheduler, StatefulSet controller and garbage collector are the real ones; the
sidecars and the app are real processes in their own pod network namespaces.
The tests share one cluster and run in file order, like an operator's day:
create, serve, undo a manual edit, upgrade (paused and resumed) under load,
lose the leader's pod, hold an upgrade while a member is down, delete
(scaling has its own module and cluster). Each test
first waits for the cluster to be healthy, so a failure does not hide behind
the previous one's leftovers for long.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families

from tests.kube import apis
from tests.kube.env import KubeEnv
from tests.raftcluster_e2e.counter_cluster import (
    Clusters,
    PollTimeout,
    app_call,
    app_template,
    counter_cluster,
    is_ready,
    poll,
)
from tests.raftcluster_e2e.operator_host import HostOperator
from tests.raftcluster_e2e.tools import run_tool
from tests.raftcluster_e2e.writer import CounterWriter, check_writes

pytestmark = [pytest.mark.kube, pytest.mark.slow]

NAME = "counter"
TIMER_ROUNDS = 10.0  # the operator's timer interval: one planned step per round
RUNNING_TIMEOUT = 180.0
UPGRADE_TIMEOUT = 240.0
FROZEN_WINDOW = 2.5 * TIMER_ROUNDS  # long enough for two rounds that must not act


@pytest.fixture(scope="module")
def clusters(kube_env: KubeEnv, cluster_namespace: str) -> Clusters:
    return Clusters(kube_env.api, cluster_namespace)


@pytest.fixture(scope="module")
def created(clusters: Clusters) -> Iterator[dict[str, Any]]:
    """The RaftCluster, created once for the module; deleted by the last test (or here)."""
    body = clusters.create(counter_cluster(NAME))
    yield body
    if clusters.get(NAME) is not None:
        clusters.delete(NAME)
        poll(lambda: clusters.get(NAME) is None, "the RaftCluster to go", 60)


def policy_api(api: client.ApiClient) -> Any:
    return client.PolicyV1Api(api)


def networking_api(api: client.ApiClient) -> Any:
    return client.NetworkingV1Api(api)


def revisions(clusters: Clusters) -> dict[str, str]:
    return {
        p.metadata.name: p.metadata.labels.get("controller-revision-hash", "")
        for p in clusters.pods(NAME)
    }


def uids(clusters: Clusters) -> dict[str, str]:
    return {p.metadata.name: p.metadata.uid for p in clusters.pods(NAME)}


def owner_uid(obj: Any) -> str:
    [ref] = obj.metadata.owner_references
    assert (ref.kind, ref.name, ref.controller) == ("RaftCluster", NAME, True)
    return str(ref.uid)


def test_owned_objects_exist_with_owner_references(
    kube_env: KubeEnv, clusters: Clusters, created: dict[str, Any]
) -> None:
    uid = created["metadata"]["uid"]
    ns = clusters.namespace
    api = kube_env.api
    sts = poll(lambda: apis.apps(api).read_namespaced_stateful_set(NAME, ns), "the StatefulSet", 90)
    assert owner_uid(sts) == uid
    assert sts.spec.update_strategy.type == "OnDelete"
    assert sts.spec.service_name == f"{NAME}-peers"
    [sidecar] = sts.spec.template.spec.init_containers
    assert (sidecar.name, sidecar.restart_policy) == ("raftpod", "Always")
    assert [c.name for c in sts.spec.template.spec.containers] == ["app"]
    assert [t.metadata.name for t in sts.spec.volume_claim_templates] == ["data"]
    core = apis.core(api)
    peers = poll(lambda: core.read_namespaced_service(f"{NAME}-peers", ns), "peers", 30)
    assert peers.spec.cluster_ip == "None" and peers.spec.publish_not_ready_addresses
    clients = core.read_namespaced_service(NAME, ns)
    assert {p.port for p in clients.spec.ports} == {8080, 7002}
    pdb = policy_api(api).read_namespaced_pod_disruption_budget(NAME, ns)
    assert pdb.spec.min_available == 2
    config = core.read_namespaced_config_map(f"{NAME}-config", ns)
    policy = networking_api(api).read_namespaced_network_policy(f"{NAME}-peers", ns)
    secrets = [core.read_namespaced_secret(f"{NAME}-{s}", ns) for s in ("ca", "peer-tls", "admin")]
    for obj in (peers, clients, pdb, config, policy, *secrets):
        assert owner_uid(obj) == uid, obj.metadata.name
    assert {"ca.crt", "token"} <= set(secrets[2].data)


def test_pods_spread_over_the_three_nodes(clusters: Clusters, created: dict[str, Any]) -> None:
    pods = poll(
        lambda: (
            (p := clusters.pods(NAME)) and len(p) == 3 and all(x.spec.node_name for x in p) and p
        ),
        "3 scheduled pods",
        90,
    )
    assert len({p.spec.node_name for p in pods}) == 3, [p.spec.node_name for p in pods]


def test_running_with_a_leader_and_kubectl_columns(
    kube_env: KubeEnv, clusters: Clusters, created: dict[str, Any]
) -> None:
    status = clusters.wait_running(NAME, 3, timeout=RUNNING_TIMEOUT)
    assert status["leader"] in {f"{NAME}-{i}" for i in range(3)}
    assert {m["role"] for m in status["members"]} == {"leader", "follower"}
    assert any(c["type"] == "Available" and c["status"] == "True" for c in status["conditions"])
    table = run_tool(
        "kubectl", "get", "raft", NAME, "-n", clusters.namespace, kubeconfig=kube_env.kubeconfig
    ).stdout.splitlines()
    row = table[1].split()
    # NAME READY LEADER PHASE TERM LAST-BACKUP(none yet: <none>) AGE
    assert row[:5] == [NAME, "3/3", status["leader"], "Running", str(status["term"])], table


def test_counter_increments_through_the_sidecar_and_only_the_leader_works(
    clusters: Clusters, created: dict[str, Any]
) -> None:
    clusters.wait_running(NAME, 3, timeout=RUNNING_TIMEOUT)
    ips = poll(lambda: len(i := clusters.ready_ips(NAME)) == 3 and i, "3 ready app pods", 60)
    values = [int(app_call(ip, "/increment", post=True)["value"]) for ip in ips * 2]
    assert values == list(range(values[0], values[0] + 6)), values
    assert {int(app_call(ip, "/count")["value"]) for ip in ips} == {values[-1]}

    def one_leader_working() -> list[dict[str, Any]] | None:
        seen = [app_call(ip, "/status") for ip in ips]
        leaders = [s for s in seen if s["is_leader"]]
        lead = clusters.status(NAME).get("leader")
        if len(leaders) == 1 and leaders[0]["pod"] == lead and leaders[0]["leader_ticks"] > 0:
            return seen
        return None

    seen = poll(one_leader_working, "exactly the Raft leader's app doing leader work", 30)
    assert all(s["leader_id"] == clusters.status(NAME)["leader"] for s in seen), seen


def test_manual_statefulset_edit_is_reconciled_back(
    kube_env: KubeEnv, clusters: Clusters, created: dict[str, Any]
) -> None:
    apps = apis.apps(kube_env.api)
    ns = clusters.namespace
    apps.patch_namespaced_stateful_set(
        NAME, ns, {"spec": {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": None}}}
    )
    poll(
        lambda: apps.read_namespaced_stateful_set(NAME, ns).spec.update_strategy.type == "OnDelete",
        "the operator to restore updateStrategy OnDelete",
        3 * TIMER_ROUNDS,
    )


def _watch_upgrade(
    clusters: Clusters, before: dict[str, str], deadline: float, pause_after_first: bool
) -> tuple[list[str], list[str], list[str]]:
    """Poll until every pod runs a new revision: (replaced in order, leaders seen, leader at
    each replacement). With `pause_after_first`, pause after the first replacement, check
    that two operator rounds replace nothing more, then resume."""
    order: list[str] = []
    leaders: list[str] = []
    leader_when_replaced: list[str] = []
    paused_checked = not pause_after_first
    while time.monotonic() < deadline:
        status = clusters.status(NAME)
        leader = status.get("leader") or ""
        if leader and (not leaders or leaders[-1] != leader):
            leaders.append(leader)
        now = uids(clusters)
        for pod, uid in now.items():
            if pod in before and uid != before[pod] and pod not in order:
                order.append(pod)
                leader_when_replaced.append(leaders[-1] if leaders else "")
        if not paused_checked and order:
            clusters.patch_spec(NAME, {"upgrade": {"paused": True}})
            frozen = dict(uids(clusters))
            until = time.monotonic() + FROZEN_WINDOW
            while time.monotonic() < until:
                current = uids(clusters)
                changed = [p for p, u in current.items() if u != frozen.get(p, u)]
                assert not changed, f"paused rollout still replaced {changed}"
                time.sleep(1.0)
            message = clusters.status(NAME).get("message", "")
            assert "paused" in message, message
            clusters.patch_spec(NAME, {"upgrade": {"paused": False}})
            paused_checked = True
        if len(order) == len(before) and status.get("phase") == "Running":
            healthy = [m for m in status.get("members") or [] if m.get("healthy")]
            if len(healthy) == len(before):
                return order, leaders, leader_when_replaced
        time.sleep(0.5)
    raise PollTimeout(f"rollout unfinished: replaced {order}, leaders {leaders}")


def test_rolling_upgrade_under_writes_pauses_resumes_and_moves_leadership_once(
    clusters: Clusters, created: dict[str, Any]
) -> None:
    clusters.wait_running(NAME, 3, timeout=RUNNING_TIMEOUT)
    before, old_revisions = uids(clusters), revisions(clusters)
    first_leader = clusters.status(NAME)["leader"]
    started = time.monotonic()
    with CounterWriter(lambda: clusters.ready_ips(NAME)) as writer:
        clusters.patch_spec(NAME, {"template": app_template(version="2")})
        order, leaders, at_replacement = _watch_upgrade(
            clusters, before, started + UPGRADE_TIMEOUT, pause_after_first=True
        )
        record = writer.stop()
    print(f"upgrade took {time.monotonic() - started:.0f}s; order {order}; leaders {leaders}")
    check_writes(clusters, NAME, record, "rolling upgrade")
    assert order[-1] == first_leader, f"the leader {first_leader} was not last: {order}"
    assert all(pod != lead for pod, lead in zip(order, at_replacement, strict=True)), (
        f"a pod was deleted while it led: {list(zip(order, at_replacement, strict=True))}"
    )
    assert len(leaders) - 1 <= len(before), f"leadership moved more than once per pod: {leaders}"
    new_revisions = revisions(clusters)
    assert len(set(new_revisions.values())) == 1
    assert set(new_revisions.values()).isdisjoint(old_revisions.values())


def test_operator_metrics_count_the_rollout_steps(raftpod_operator: HostOperator) -> None:
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(raftpod_operator.metrics())
        for s in family.samples
    }

    def value(name: str, **labels: str) -> float:
        return samples.get((name, tuple(sorted(labels.items()))), 0.0)

    assert value("raftpod_operator_actions_total", action="DeletePod") >= 3
    assert value("raftpod_operator_actions_total", action="TransferLeadership") >= 1
    assert value("raftpod_operator_reconcile_seconds_count", handler="timer") > 0


def test_killed_leader_pod_comes_back_and_writes_continue(
    kube_env: KubeEnv, clusters: Clusters, created: dict[str, Any]
) -> None:
    clusters.wait_running(NAME, 3, timeout=RUNNING_TIMEOUT)
    leader = clusters.status(NAME)["leader"]
    uid = uids(clusters)[leader]
    with CounterWriter(lambda: clusters.ready_ips(NAME)) as writer:
        apis.core(kube_env.api).delete_namespaced_pod(
            leader, clusters.namespace, grace_period_seconds=0
        )
        poll(
            lambda: any(
                p.metadata.name == leader and p.metadata.uid != uid and is_ready(p)
                for p in clusters.pods(NAME)
            ),
            f"{leader} to be recreated, rejoin and be ready",
            RUNNING_TIMEOUT,
        )
        status = clusters.wait_running(NAME, 3, timeout=RUNNING_TIMEOUT)
        record = writer.stop()
    check_writes(clusters, NAME, record, "leader pod killed")
    assert status["leader"], status


def _set_unschedulable(kube_env: KubeEnv, node: str, value: bool) -> None:
    apis.core(kube_env.api).patch_node(node, {"spec": {"unschedulable": value}})


def test_upgrade_waits_while_a_member_is_down_and_says_why(
    kube_env: KubeEnv, clusters: Clusters, created: dict[str, Any]
) -> None:
    """A member whose node is cordoned cannot come back; no healthy member may restart."""
    clusters.wait_running(NAME, 3, timeout=RUNNING_TIMEOUT)
    leader = clusters.status(NAME)["leader"]
    pods = {p.metadata.name: p for p in clusters.pods(NAME)}
    down = next(name for name in sorted(pods) if name != leader)
    node = pods[down].spec.node_name
    _set_unschedulable(kube_env, node, True)
    try:
        apis.core(kube_env.api).delete_namespaced_pod(down, clusters.namespace)
        clusters.wait_status(
            NAME,
            lambda s: any(m["name"] == down and not m["healthy"] for m in s.get("members") or []),
            f"{down} reported unhealthy",
            90,
        )
        healthy_before = {n: u for n, u in uids(clusters).items() if n != down}
        since = dt.datetime.now(dt.UTC).replace(microsecond=0)
        clusters.patch_spec(NAME, {"template": app_template(version="3")})
        until = time.monotonic() + FROZEN_WINDOW
        while time.monotonic() < until:
            current = uids(clusters)
            restarted = [n for n, u in healthy_before.items() if current.get(n) != u]
            assert not restarted, f"{restarted} restarted while {down} was down"
            time.sleep(1.0)
        status = clusters.status(NAME)
        phase, message = status.get("phase"), status.get("message", "")
        print(f"{down} down during an upgrade: phase {phase}: {message}")
        assert phase in ("Upgrading", "Degraded"), phase
        assert down in message, message
        said = [
            f"{e.reason}: {e.message}"
            for e in clusters.events(NAME)
            if (e.last_timestamp or e.event_time) >= since and down in (e.message or "")
        ]
        print(f"events since the template change naming {down}: {said}")
        assert said, f"no event since the template change names {down}"
    finally:
        _set_unschedulable(kube_env, node, False)
    poll(
        lambda: (
            len(set(revisions(clusters).values())) == 1
            and clusters.status(NAME).get("phase") == "Running"
        ),
        "the rollout to finish once the member is back",
        UPGRADE_TIMEOUT,
    )


def _denied(operator: HostOperator, about: str) -> list[str]:
    """Operator log lines where the API server refused it (403) something about `about`."""
    lines = operator.log_path.read_text(errors="replace").splitlines()
    return [line for line in lines if "forbidden" in line.lower() and about in line]


def test_operator_had_every_permission_it_used(raftpod_operator: HostOperator) -> None:
    """The operator ran as the chart's ServiceAccount: a 403 means the chart's RBAC is short."""
    denied = _denied(raftpod_operator, "")
    assert not denied, "\n".join(denied[:5])


def test_chart_lets_kopf_watch_crds(raftpod_operator: HostOperator) -> None:
    """kopf watches CRDs to notice resources changing; a 403 there is easy to overlook."""
    denied = _denied(raftpod_operator, "customresourcedefinitions")
    assert not denied, denied[0]
    log = raftpod_operator.log_path.read_text(errors="replace")
    assert "Not enough permissions to watch for resources" not in log


def test_deletion_removes_owned_objects_and_keeps_volumes(
    kube_env: KubeEnv, clusters: Clusters, created: dict[str, Any]
) -> None:
    ns = clusters.namespace
    core, apps = apis.core(kube_env.api), apis.apps(kube_env.api)
    clusters.delete(NAME)
    poll(lambda: clusters.get(NAME) is None, "the finalizer to be released", 60)
    poll(
        lambda: (
            not apps.list_namespaced_stateful_set(ns).items
            and not core.list_namespaced_service(ns).items
            and not [
                c for c in core.list_namespaced_config_map(ns).items if c.metadata.owner_references
            ]
            and not [
                s for s in core.list_namespaced_secret(ns).items if s.metadata.owner_references
            ]
            and not policy_api(kube_env.api).list_namespaced_pod_disruption_budget(ns).items
            and not networking_api(kube_env.api).list_namespaced_network_policy(ns).items
        ),
        "the garbage collector to remove every owned object",
        90,
    )
    poll(lambda: not clusters.pods(NAME), "the pods to go", 90)
    claims = core.list_namespaced_persistent_volume_claim(ns).items
    assert len(claims) == 3, "storage.retainOnDelete defaults to true: the PVCs stay"
