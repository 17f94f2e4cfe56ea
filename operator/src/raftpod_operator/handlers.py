"""Thin kopf handlers: parse the spec, plan from what the cluster shows, apply one step.

* create / update / resume -> `reconcile`: every owned object by server-side
  apply (the StatefulSet keeps the replica count the scaling plan gave it).
* a timer -> `observe_and_act`: re-apply the owned objects (undoing manual edits),
  read pods and every sidecar's ``/admin/status``, plan scaling, else the rolling
  upgrade, take the one next step, write status.
* delete -> `cleanup_volumes` (behind the operator's finalizer): PVCs go unless
  ``storage.retainOnDelete``; every other child goes by owner reference.

`register` puts them on a registry the caller hands in; API and HTTP clients
live in kopf's ``memo`` (set up in `startup`), never in module globals.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Mapping
from typing import Any

import aiohttp
import kopf
from prometheus_client import CollectorRegistry

from raftpod_operator import kube as kube_mod
from raftpod_operator import manifests as m
from raftpod_operator.actions import (
    Action,
    AddLearner,
    DeletePod,
    DeletePvc,
    Done,
    Promote,
    RemoveMember,
    SetReplicas,
    TransferLeadership,
    Wait,
    describe,
)
from raftpod_operator.backup import (
    BACKUP_NOW_ANNOTATION,
    BACKUP_TIMEOUT,
    BackupState,
    after_attempt,
    backup_request,
    judge,
    last_backup,
    next_firing,
    parse_time,
    stamp,
)
from raftpod_operator.certs import admin_token_only, plan_tls
from raftpod_operator.metrics import OperatorMetrics
from raftpod_operator.restore import restore_failure
from raftpod_operator.scaling import plan_scaling
from raftpod_operator.scheduling import unschedulable_news, unschedulable_report
from raftpod_operator.sidecar_client import AdminClient, AdminError, client_ssl_context
from raftpod_operator.spec import GROUP, PLURAL, VERSION, RaftClusterSpec, SpecError, parse_spec
from raftpod_operator.status import (
    Activity,
    ClusterView,
    NodeView,
    PodObservation,
    activity_for,
    derive_status,
    observe,
    parse_admin_status,
    set_condition,
    was_upgrading,
)
from raftpod_operator.upgrade import plan_upgrade

TIMER_INTERVAL = 10.0
FINALIZER = f"{GROUP}/finalizer"
SECRET = ("v1", "Secret")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def startup(*, settings: kopf.OperatorSettings, memo: Any, **_: Any) -> None:
    """Create the clients once per operator process and detect native-sidecar support."""
    settings.persistence.finalizer = FINALIZER
    settings.posting.level = logging.INFO
    if getattr(memo, "metrics", None) is None:
        memo.metrics = OperatorMetrics(CollectorRegistry())
    memo.http = aiohttp.ClientSession()
    memo.kube = kube_mod.from_environment(memo.http)
    major, minor = await memo.kube.server_version()
    memo.caps = m.Capabilities(m.server_supports_native_sidecar(major, minor))


async def shutdown(*, memo: Any, **_: Any) -> None:
    await memo.http.close()


def _parse_or_fail(body: kopf.Body, spec: Mapping[str, Any], patch: kopf.Patch) -> RaftClusterSpec:
    """The typed spec; an invalid one ends in status Failed, a Warning event and PermanentError."""
    try:
        parsed = parse_spec(spec)
        if parsed.tls.enabled and parsed.tls.issuer == "cert-manager":
            raise SpecError(["spec.tls.issuer: cert-manager is not supported yet; use operator"])
    except SpecError as exc:
        previous = (body.get("status") or {}).get("conditions") or []
        patch.status["phase"] = "Failed"
        patch.status["message"] = str(exc)
        patch.status["conditions"] = [
            set_condition(
                previous,
                "Degraded",
                status=True,
                reason="InvalidSpec",
                message=str(exc),
                now=_now(),
            )
        ]
        kopf.event(body, type="Warning", reason="InvalidSpec", message=str(exc))
        raise kopf.PermanentError(f"invalid RaftCluster spec: {exc}") from None
    if parsed.replicas % 2 == 0:
        kopf.warn(
            body,
            reason="EvenReplicas",
            message=f"{parsed.replicas} voters tolerate {(parsed.replicas - 1) // 2} failed "
            f"member(s), no more than {parsed.replicas - 1} do; an odd count is recommended",
        )
    return parsed


async def _ensure_secrets(
    memo: Any, body: kopf.Body, c: m.Cluster, spec: RaftClusterSpec, members: int
) -> None:
    """Issue or renew TLS material and the admin token; write only Secrets that changed."""
    kube: kube_mod.KubeApi = memo.kube
    names = (m.ca_secret_name(c), m.peer_tls_secret_name(c), m.admin_secret_name(c))
    current = [m.decode_secret(await kube.get(*SECRET, c.namespace, n)) for n in names]
    if spec.tls.enabled:
        pods = [m.pod_name(c, i) for i in range(members)]
        material = plan_tls(
            c.name,
            c.namespace,
            pods=pods,
            now=_now(),
            ca=current[0],
            peer=current[1],
            admin=current[2],
        )
        wanted = [material.ca, material.peer, material.admin]
        if material.renewed:
            kopf.info(body, reason="CertificatesIssued", message=", ".join(material.renewed))
    else:
        wanted = [current[0], current[1], admin_token_only(current[2])]
    for name, old, new in zip(names, current, wanted, strict=True):
        if new and new != old:
            obj = m.secret(c, name, new)
            kopf.adopt(obj, owner=body)
            await kube.apply(obj)


async def _apply_desired(
    memo: Any,
    body: kopf.Body,
    c: m.Cluster,
    spec: RaftClusterSpec,
    replicas: int | None = None,
) -> None:
    """Server-side apply every owned object; ``replicas`` None keeps the StatefulSet's count."""
    kube: kube_mod.KubeApi = memo.kube
    config = await kube.get("v1", "ConfigMap", c.namespace, m.config_map_name(c))
    voters, bootstrapped = m.bootstrap_state(config, spec)
    if replicas is None:
        sts = await kube.get("apps/v1", "StatefulSet", c.namespace, c.name)
        # a new cluster starts with its bootstrap voters (one when restoring; scaling adds more)
        replicas = (
            int(sts["spec"]["replicas"]) if sts else (voters if not bootstrapped else spec.replicas)
        )
    await _ensure_secrets(memo, body, c, spec, max(replicas, spec.replicas))
    objects = m.owned_objects(
        c, spec, memo.caps, replicas=replicas, bootstrap_voters=voters, bootstrapped=bootstrapped
    )
    kopf.adopt(objects, owner=body)
    for obj in objects:
        await kube.apply(obj)


async def reconcile(
    *,
    body: kopf.Body,
    spec: kopf.Spec,
    name: str,
    namespace: str | None,
    patch: kopf.Patch,
    memo: Any,
    **_: Any,
) -> None:
    """Create, update, resume: bring every owned object to the spec."""
    with memo.metrics.timed("reconcile"):
        parsed = _parse_or_fail(body, spec, patch)
        await _apply_desired(memo, body, m.Cluster(name, namespace or "default"), parsed)


def _admin_client(memo: Any, admin: Mapping[str, str], tls: bool) -> AdminClient:
    context = None
    if tls and {"ca.crt", "tls.crt", "tls.key"} <= admin.keys():
        context = client_ssl_context(admin["ca.crt"], admin["tls.crt"], admin["tls.key"])
    return AdminClient(memo.http, token=admin.get("token"), ssl_context=context)


async def _node_view(client: AdminClient, url: str) -> NodeView | None:
    try:
        return parse_admin_status(await client.status(url))
    except (AdminError, ValueError):
        return None


async def _execute(
    action: Action,
    *,
    memo: Any,
    body: kopf.Body,
    c: m.Cluster,
    spec: RaftClusterSpec,
    client: AdminClient,
    view: ClusterView,
) -> None:
    """Carry out one planned step; a failed admin call is reported and retried next round."""
    kube: kube_mod.KubeApi = memo.kube
    tls = spec.tls.enabled
    leader = m.admin_url(c, view.leader, tls) if view.leader else ""
    try:
        match action:
            case TransferLeadership(source, target):
                await client.transfer_leadership(m.admin_url(c, source, tls), target)
            case DeletePod(pod):
                await kube.delete("v1", "Pod", c.namespace, pod)
            case AddLearner(pod, address):
                await client.add_learner(leader, pod, address)
            case Promote(pod):
                await client.promote(leader, pod)
            case RemoveMember(pod):
                await client.remove_member(leader, pod)
            case SetReplicas(replicas):
                await _apply_desired(memo, body, c, spec, replicas=replicas)
            case DeletePvc(claim):
                await kube.delete("v1", "PersistentVolumeClaim", c.namespace, claim)
            case _:
                return
    except AdminError as exc:
        kopf.warn(body, reason="StepFailed", message=f"{describe(action)}: {exc}")
        return
    memo.metrics.actions.labels(type(action).__name__).inc()
    kopf.info(body, reason=type(action).__name__, message=describe(action))


def _target_revision(sts: Mapping[str, Any]) -> str | None:
    """The revision pods should run, once the StatefulSet controller has seen the template."""
    meta, status = sts.get("metadata") or {}, sts.get("status") or {}
    if status.get("observedGeneration") != meta.get("generation"):
        return None
    revision = status.get("updateRevision")
    return str(revision) if revision else None


async def _observe(
    kube: kube_mod.KubeApi, c: m.Cluster, spec: RaftClusterSpec, client: AdminClient
) -> tuple[list[PodObservation], ClusterView]:
    """Every pod of the cluster with its sidecar's ``/admin/status`` (None when unreachable)."""
    pods = await kube.list("v1", "Pod", c.namespace, m.label_selector(c))
    urls = [m.admin_url(c, p["metadata"]["name"], spec.tls.enabled) for p in pods]
    views = await asyncio.gather(*(_node_view(client, url) for url in urls))
    observed = [PodObservation.from_pod(p, v) for p, v in zip(pods, views, strict=True)]
    return observed, observe(observed, spec.upgrade.max_lag_entries)


def _formed(c: m.Cluster, view: ClusterView, bootstrap_voters: int) -> bool:
    """A leader leads a configuration holding every bootstrap voter: later pods must join."""
    wanted = {m.pod_name(c, i) for i in range(bootstrap_voters)}
    return view.leader is not None and wanted <= {v.name for v in view.voters}


async def observe_and_act(
    *,
    body: kopf.Body,
    spec: kopf.Spec,
    name: str,
    namespace: str | None,
    status: kopf.Status,
    patch: kopf.Patch,
    memo: Any,
    **_: Any,
) -> None:
    """One round: observe pods and sidecars, take at most one step, write status."""
    with memo.metrics.timed("timer"):
        try:
            parsed = parse_spec(spec)
        except SpecError:
            return  # the create/update handler has reported it
        namespace = namespace or "default"
        c = m.Cluster(name, namespace)
        kube: kube_mod.KubeApi = memo.kube
        sts = await kube.get("apps/v1", "StatefulSet", namespace, name)
        if sts is None:
            return
        # every owned object back to the spec, so a manual edit is undone within a round;
        # certificates are renewed here too, between spec changes (at 2/3 of their lifetime)
        await _apply_desired(memo, body, c, parsed)
        config = await kube.get("v1", "ConfigMap", namespace, m.config_map_name(c))
        voters, bootstrapped = m.bootstrap_state(config, parsed)
        admin = m.decode_secret(await kube.get(*SECRET, namespace, m.admin_secret_name(c)))
        client = _admin_client(memo, admin, parsed.tls.enabled)
        observed, view = await _observe(kube, c, parsed, client)
        if not bootstrapped and _formed(c, view, voters):
            bootstrapped = True
            cm = m.config_map(c, parsed, voters, bootstrapped=True)
            kopf.adopt(cm, owner=body)
            await kube.apply(cm)
            kopf.info(body, reason="Bootstrapped", message=f"leader {view.leader} elected")
        activity = Activity()
        if bootstrapped:
            activity = await _plan_and_act(
                memo,
                body,
                c,
                parsed,
                sts=sts,
                observed=observed,
                view=view,
                client=client,
                upgrading=was_upgrading(status),
            )
        memo.metrics.upgrades_in_progress.labels(namespace, name).set(
            1 if activity.kind == "Upgrading" else 0
        )
        restoring = m.restoring(parsed) and not (status.get("restore") or {}).get("completedTime")
        unschedulable = unschedulable_report(observed, parsed.placement)
        news = unschedulable_news(status, unschedulable)
        if news is not None:
            kopf.warn(body, reason="Unschedulable", message=news)
        new_status = derive_status(
            view=view,
            activity=activity,
            desired_replicas=parsed.replicas,
            selector=m.label_selector(c),
            bootstrapped=bootstrapped,
            restoring=restoring,
            unschedulable=unschedulable,
            generation=body.get("metadata", {}).get("generation"),
            previous=status,
            now=_now(),
        )
        if restoring:
            new_status.update(
                await _restore_progress(
                    kube, body, c, parsed, status=new_status, bootstrapped=bootstrapped
                )
            )
        if parsed.backup is not None:
            # new_status carries lastBackup, backup and BackupSucceeded over
            leader = view.leader if bootstrapped else None
            leader_url = m.admin_url(c, leader, parsed.tls.enabled) if leader else None
            new_status.update(
                await backup_round(
                    memo.metrics,
                    body,
                    c,
                    parsed,
                    status=new_status,
                    client=client,
                    leader_url=leader_url,
                )
            )
        if new_status["phase"] != status.get("phase"):
            kind = "Warning" if new_status["phase"] in ("Degraded", "Failed") else "Normal"
            kopf.event(body, type=kind, reason=new_status["phase"], message=new_status["message"])
        patch.status.update(new_status)


async def _plan_and_act(
    memo: Any,
    body: kopf.Body,
    c: m.Cluster,
    spec: RaftClusterSpec,
    *,
    sts: Mapping[str, Any],
    observed: list[PodObservation],
    view: ClusterView,
    client: AdminClient,
    upgrading: bool,
) -> Activity:
    """Scaling first; only a cluster at its size is upgraded (``upgrading``: the last round was)."""
    kube: kube_mod.KubeApi = memo.kube
    claims = await kube.list("v1", "PersistentVolumeClaim", c.namespace, m.label_selector(c))
    action: Action = plan_scaling(
        c,
        desired=spec.replicas,
        sts_replicas=int(sts["spec"]["replicas"]),
        pods=observed,
        view=view,
        pvcs=[claim["metadata"]["name"] for claim in claims],
    )
    kind = "Scaling"
    if isinstance(action, Done):
        kind = "Upgrading"
        target = _target_revision(sts)
        if target is None:
            action = Wait("waiting for the StatefulSet controller to see the new template")
        else:
            action = plan_upgrade(
                observed,
                view,
                target,
                paused=spec.upgrade.paused,
                was_upgrading=upgrading,
                now=_now(),
            )
    await _execute(action, memo=memo, body=body, c=c, spec=spec, client=client, view=view)
    return activity_for(kind, action)


async def _restore_progress(
    kube: kube_mod.KubeApi,
    body: kopf.Body,
    c: m.Cluster,
    spec: RaftClusterSpec,
    *,
    status: Mapping[str, Any],
    bootstrapped: bool,
) -> dict[str, Any]:
    """Restoring: Failed when ordinal 0 cannot restore; recorded as done once Running."""
    assert spec.restore is not None and spec.restore.from_ is not None
    assert spec.restore.from_.s3 is not None
    url = m.restore_url(spec.restore.from_.s3)
    if status["phase"] == "Running":
        kopf.info(body, reason="Restored", message=f"every member joined; restored from {url}")
        return {"restore": {"url": url, "completedTime": stamp(_now())}}
    update: dict[str, Any] = {"restore": {"url": url}}
    if bootstrapped:
        return update
    problem = restore_failure(await kube.get("v1", "Pod", c.namespace, m.pod_name(c, 0)))
    if problem is None:
        return update
    message = (
        f"restore from {url} failed on {m.pod_name(c, 0)}: {problem}. Nothing serves. Fix the "
        "Secret or the object and the member retries; or delete this RaftCluster and create "
        "it with another restore.from"
    )
    degraded = set_condition(
        status.get("conditions") or [],
        "Degraded",
        status=True,
        reason="RestoreFailed",
        message=message,
        now=_now(),
    )
    conditions = [x for x in status["conditions"] if x["type"] != "Degraded"]
    return {**update, "phase": "Failed", "message": message, "conditions": [*conditions, degraded]}


async def backup_round(
    metrics: OperatorMetrics,
    body: kopf.Body,
    c: m.Cluster,
    spec: RaftClusterSpec,
    *,
    status: Mapping[str, Any],
    client: AdminClient,
    leader_url: str | None,
) -> dict[str, Any]:
    """Ask the leader for a due or requested backup, then judge ``BackupSucceeded``.

    ``status`` is this round's new status; the result holds what changes in it.
    """
    assert spec.backup is not None
    meta = body.get("metadata", {})
    created = parse_time(meta.get("creationTimestamp")) or _now()
    requested = str((meta.get("annotations") or {}).get(BACKUP_NOW_ANNOTATION) or "")
    state = BackupState.from_status(status)
    last = dict(status.get("lastBackup") or {})
    labels = (c.namespace, c.name)
    firing = None
    if leader_url is not None:
        firing = next_firing(
            spec.backup.schedule, created=created, state=state, on_demand=requested, now=_now()
        )
    if firing is not None:
        assert leader_url is not None
        started = time.monotonic()
        error: str | None = None
        try:
            answer = await client.backup(
                leader_url,
                backup_request(spec.backup, c, str(meta.get("uid", ""))),
                seconds=BACKUP_TIMEOUT,
            )
            last = last_backup(answer if isinstance(answer, Mapping) else {}, _now())
        except AdminError as exc:
            error = str(exc)
        metrics.backup_seconds.labels(*labels).observe(time.monotonic() - started)
        metrics.backups.labels("failure" if error else "success").inc()
        state = after_attempt(state, firing, error=error, now=_now())
        what = f"scheduled for {stamp(firing.due)}" if firing.due else "on demand"
        if error is None:
            kopf.info(
                body,
                reason="BackupSucceeded",
                message=f"backup {what}: index {last['index']}, {last['sizeBytes']} bytes, "
                f"{last['url']}",
            )
        else:
            metrics.backup_failures.labels(*labels).inc()
            retry = "" if firing.due is None or state.pending is None else "; will retry"
            kopf.warn(
                body,
                reason="BackupFailed",
                message=f"backup {what} (attempt {max(firing.attempt, 1)}) failed: {error}{retry}",
            )
    update: dict[str, Any] = {"backup": state.to_status()}
    success = parse_time(last.get("time"))
    if success is not None:
        update["lastBackup"] = last
        metrics.backup_last_success.labels(*labels).set(success.timestamp())
        metrics.backup_size.labels(*labels).set(last.get("sizeBytes", 0))
    verdict = judge(
        spec.backup.schedule, created=created, state=state, last_success=success, now=_now()
    )
    if verdict is not None:
        conditions = [x for x in status["conditions"] if x["type"] != "BackupSucceeded"]
        condition = set_condition(
            status["conditions"],
            "BackupSucceeded",
            status=verdict.ok,
            reason=verdict.reason,
            message=verdict.message,
            now=_now(),
        )
        update["conditions"] = [*conditions, condition]
    return update


async def cleanup_volumes(
    *, spec: kopf.Spec, name: str, namespace: str | None, memo: Any, **_: Any
) -> None:
    """On deletion: delete the members' PVCs unless ``storage.retainOnDelete`` (default true)."""
    if (spec.get("storage") or {}).get("retainOnDelete", True) is not False or not namespace:
        return
    kube: kube_mod.KubeApi = memo.kube
    c = m.Cluster(name, namespace)
    for claim in await kube.list("v1", "PersistentVolumeClaim", namespace, m.label_selector(c)):
        await kube.delete("v1", "PersistentVolumeClaim", namespace, claim["metadata"]["name"])


def register(registry: kopf.OperatorRegistry) -> None:
    """Put every handler on ``registry`` (the CLI hands in a fresh one)."""
    resource = (GROUP, VERSION, PLURAL)
    # a fresh registry has none of kopf's fallback logins: use the kubernetes client's,
    # which reads the in-cluster service account or the kubeconfig like kube.py does
    kopf.on.login(registry=registry)(kopf.login_via_client)
    kopf.on.startup(registry=registry)(startup)
    kopf.on.cleanup(registry=registry)(shutdown)
    kopf.on.create(*resource, registry=registry, id="reconcile")(reconcile)
    kopf.on.update(*resource, registry=registry, id="reconcile")(reconcile)
    kopf.on.resume(*resource, registry=registry, id="reconcile")(reconcile)
    kopf.timer(*resource, registry=registry, interval=TIMER_INTERVAL, initial_delay=3.0)(
        observe_and_act
    )
    kopf.on.delete(*resource, registry=registry)(cleanup_volumes)
