"""Builders of observed clusters for the planner and status tests, plus the golden-file check."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from raftpod_operator.manifests import Cluster
from raftpod_operator.spec import RaftClusterSpec, parse_spec
from raftpod_operator.status import ClusterView, MemberConfig, NodeView, PodObservation, observe

GOLDEN = Path(__file__).parent / "golden"
NOW = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)
C = Cluster("c", "ns")
MAX_LAG = 1000


def minimal_spec(**overrides: Any) -> RaftClusterSpec:
    raw: dict[str, Any] = {
        "template": {"spec": {"containers": [{"name": "app", "image": "example/app:1"}]}},
    }
    raw.update(overrides)
    return parse_spec(raw)


def check_golden(name: str, obj: Any) -> None:
    """Compare ``obj`` with golden/<name>.yaml; RAFTPOD_REWRITE=1 rewrites it instead."""
    path = GOLDEN / f"{name}.yaml"
    text = yaml.safe_dump(json.loads(json.dumps(obj)), sort_keys=True, width=100)
    if os.environ.get("RAFTPOD_REWRITE") == "1":
        path.write_text(text)
        return
    assert path.exists(), f"{path} missing: run with RAFTPOD_REWRITE=1 to create it"
    assert text == path.read_text(), f"{name} differs from {path}; RAFTPOD_REWRITE=1 rewrites"


def cluster(
    n: int = 3,
    *,
    leader: str | None = "c-0",
    term: int = 5,
    last_index: int = 100,
    lag: Mapping[str, int] | None = None,
    not_ready: Iterable[str] = (),
    unreachable: Iterable[str] = (),
    missing: Iterable[str] = (),
    deleting: Iterable[str] = (),
    learners: Iterable[str] = (),
    extra_pods: Iterable[str] = (),
    revision: Mapping[str, str] | None = None,
    default_revision: str = "r1",
    created: Mapping[str, dt.datetime] | None = None,
) -> tuple[list[PodObservation], ClusterView]:
    """Members c-0..c-(n-1) (plus ``learners`` in the config, ``extra_pods`` outside it)."""
    lag, revision, created = dict(lag or {}), dict(revision or {}), dict(created or {})
    not_ready, unreachable, missing = set(not_ready), set(unreachable), set(missing)
    deleting, learner_set = set(deleting), set(learners)
    names = [f"c-{i}" for i in range(n)] + sorted(learner_set)
    config = tuple(
        MemberConfig(
            id=name,
            voter=name not in learner_set,
            address=f"{name}.c-peers.ns.svc:7000",
            match_index=last_index - lag.get(name, 0),
        )
        for name in names
    )
    pods = []
    for name in [*names, *extra_pods]:
        if name in missing:
            continue
        view = None
        if name not in unreachable:
            is_leader = name == leader
            view = NodeView(
                id=name,
                role="leader" if is_leader else ("learner" if name in learner_set else "follower"),
                term=term,
                leader=leader,
                commit_index=last_index,
                applied_index=last_index - lag.get(name, 0),
                last_index=last_index - lag.get(name, 0),
                members=config if is_leader else (),
            )
        pods.append(
            PodObservation(
                name=name,
                ready=name not in not_ready,
                revision=revision.get(name, default_revision),
                created=created.get(name, NOW - dt.timedelta(hours=1)),
                deleting=name in deleting,
                view=view,
            )
        )
    return pods, observe(pods, MAX_LAG)


def drained(queue: asyncio.Queue[Any]) -> list[Any]:
    """Everything posted so far (the ``events`` fixture's queue)."""
    items = []
    while not queue.empty():
        items.append(queue.get_nowait())
    return items
