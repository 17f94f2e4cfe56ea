"""The operator's planners and admin client driving real sidecar processes on 127.0.0.1.

This is the contract between the two halves: the JSON of ``/admin/status`` as
`parse_admin_status` reads it, and the membership and leadership calls the
planners ask for, carried out by real nodes. The test plays the handler's part
(and the StatefulSet's: starting and stopping member processes); peers use
loopback addresses instead of the pods' DNS names.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from tests.ports import free_port

from raftpod_operator.actions import (
    AddLearner,
    Done,
    Promote,
    RemoveMember,
    SetReplicas,
    TransferLeadership,
)
from raftpod_operator.manifests import Cluster
from raftpod_operator.scaling import plan_scaling
from raftpod_operator.sidecar_client import AdminClient, AdminError
from raftpod_operator.status import ClusterView, PodObservation, observe, parse_admin_status
from raftpod_operator.upgrade import plan_upgrade

pytestmark = pytest.mark.slow

SIDECAR = Path(sys.executable).parent / "raftpod-sidecar"
C = Cluster("c", "ns")
TOKEN = "contract-token"
MAX_LAG = 1000


@dataclass
class Member:
    name: str
    peer: int
    admin: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.peer}"


@dataclass
class Fleet:
    """Member processes, like the StatefulSet's pods."""

    root: Path
    members: dict[str, Member] = field(default_factory=dict)

    def start(self, name: str, *, peers: str = "", join: str = "") -> None:
        m = self.members[name]
        data = self.root / name
        args = [
            str(SIDECAR),
            "--id",
            name,
            "--data-dir",
            str(data),
            "--peer-listen",
            m.address,
            "--api-listen",
            f"127.0.0.1:{free_port()}",
            "--admin-listen",
            f"127.0.0.1:{m.admin}",
            "--admin-token-file",
            str(self.root / "token"),
            "--event-loop",
            "asyncio",
            "--log-level",
            "warning",
        ]
        args += ["--peers", peers] if peers else ["--join", join]
        log = (self.root / f"{name}.log").open("ab")
        m.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def stop(self, name: str) -> None:
        proc = self.members[name].proc
        if proc is None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        self.members[name].proc = None

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-2000:]}"
            for p in sorted(self.root.glob("*.log"))
        )


@pytest.fixture
async def fleet(tmp_path: Path) -> AsyncIterator[Fleet]:
    (tmp_path / "token").write_text(TOKEN)
    fleet = Fleet(tmp_path)
    for i in range(4):
        name = f"c-{i}"
        fleet.members[name] = Member(name, free_port(), free_port())
    peers = ",".join(f"c-{i}={fleet.members[f'c-{i}'].address}" for i in range(3))
    for i in range(3):
        fleet.start(f"c-{i}", peers=peers)
    try:
        yield fleet
    finally:
        for name in list(fleet.members):
            fleet.stop(name)


async def look(fleet: Fleet, client: AdminClient) -> tuple[list[PodObservation], ClusterView]:
    """What the timer handler would see: each running member's status and readiness."""
    pods = []
    for m in fleet.members.values():
        if m.proc is None:
            continue
        try:
            view = parse_admin_status(await client.status(m.admin_url))
        except (AdminError, ValueError):
            view = None
        ready = bool(view is not None and view.leader)
        pods.append(PodObservation(m.name, ready, "r1", view=view))
    return pods, observe(pods, MAX_LAG)


async def until(fleet: Fleet, client: AdminClient, check: object, what: str) -> ClusterView:
    deadline = time.monotonic() + 30
    while True:
        _, view = await look(fleet, client)
        if check(view):  # type: ignore[operator]
            return view
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}; last view {view}\n{fleet.logs()}")
        await asyncio.sleep(0.2)


def voters(view: ClusterView) -> list[str]:
    return sorted(m.name for m in view.voters)


async def scale_to(fleet: Fleet, client: AdminClient, desired: int, sts: int) -> list[str]:
    """Carry out the scaling plan step by step, as the handler would; the steps taken."""
    steps: list[str] = []
    for _ in range(60):
        pods, view = await look(fleet, client)
        action = plan_scaling(C, desired=desired, sts_replicas=sts, pods=pods, view=view, pvcs=[])
        if action == Done():
            return steps
        leader = fleet.members[view.leader].admin_url if view.leader else ""
        try:
            match action:
                case AddLearner(pod, _):
                    await client.add_learner(leader, pod, fleet.members[pod].address)
                case SetReplicas(n):
                    for i in range(sts, n):
                        fleet.start(f"c-{i}", join=leader)
                    for i in range(n, sts):
                        fleet.stop(f"c-{i}")
                    sts = n
                case Promote(pod):
                    await client.promote(leader, pod)
                case RemoveMember(pod):
                    await client.remove_member(leader, pod)
                case TransferLeadership(source, target):
                    await client.transfer_leadership(fleet.members[source].admin_url, target)
                case _:
                    await asyncio.sleep(0.3)  # Wait: the next round looks again
        except AdminError as exc:
            if exc.code not in ("not_caught_up", "change_pending", "no_leader"):
                raise
        steps.append(type(action).__name__)
    pytest.fail(f"scaling to {desired} did not finish: {steps}\n{fleet.logs()}")


async def test_planners_drive_real_sidecars(fleet: Fleet) -> None:
    async with aiohttp.ClientSession() as session:
        client = AdminClient(session, token=TOKEN, timeout=5)
        view = await until(
            fleet, client, lambda v: v.leader and len(v.healthy_voters) == 3, "a leader of three"
        )
        assert voters(view) == ["c-0", "c-1", "c-2"]
        assert all(m.lag is not None and m.lag <= MAX_LAG for m in view.voters)

        steps = await scale_to(fleet, client, 4, 3)
        assert [s for s in steps if s != "Wait"][:3] == ["AddLearner", "SetReplicas", "Promote"]
        view = await until(fleet, client, lambda v: len(v.healthy_voters) == 4, "four voters")
        assert voters(view) == ["c-0", "c-1", "c-2", "c-3"]

        # the rollout's last step: the leader alone is outdated, so leadership moves first
        pods, view = await look(fleet, client)
        outdated = [
            PodObservation(p.name, p.ready, "r0" if p.name == view.leader else "r2", view=p.view)
            for p in pods
        ]
        action = plan_upgrade(
            outdated, view, "r2", paused=False, was_upgrading=True, now=dt.datetime.now(dt.UTC)
        )
        assert isinstance(action, TransferLeadership)
        await client.transfer_leadership(fleet.members[action.source].admin_url, action.target)
        await until(fleet, client, lambda v: v.leader == action.target, "the new leader")

        await scale_to(fleet, client, 3, 4)
        view = await until(
            fleet, client, lambda v: len(v.voters) == 3 and v.has_quorum, "three voters again"
        )
        assert voters(view) == ["c-0", "c-1", "c-2"]
        assert fleet.members["c-3"].proc is None
