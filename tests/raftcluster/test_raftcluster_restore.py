"""Restore: one voter restores and the rest join; a restore that cannot work shows as Failed."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from raftcluster_env import C, cluster, minimal_spec

from raftpod_operator import manifests as m
from raftpod_operator.actions import AddLearner, Promote
from raftpod_operator.restore import RESTORE_CRASHES, restore_failure
from raftpod_operator.scaling import plan_scaling
from raftpod_operator.status import Activity, activity_for, derive_phase

RESTORE = {"from": {"s3": {"bucket": "bk", "prefix": "backups/ns/c"}}}


def pod(
    restarts: int,
    *,
    exit_code: int = 1,
    message: str = "",
    native: bool = True,
    waiting: dict[str, str] | None = None,
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": "raftpod",
        "restartCount": restarts,
        "state": {"waiting": waiting or {"reason": "CrashLoopBackOff"}},
        "lastState": {"terminated": {"exitCode": exit_code, "message": message}},
    }
    key = "initContainerStatuses" if native else "containerStatuses"
    return {"metadata": {"name": "c-0"}, "status": {key: [entry]}}


def test_a_restore_is_one_voter_that_the_scale_up_plan_grows() -> None:
    spec = minimal_spec(restore=RESTORE, replicas=3)
    voters, bootstrapped = m.bootstrap_state(None, spec)
    assert (voters, bootstrapped) == (1, False)
    data = m.config_map(C, spec, voters, bootstrapped)["data"]
    assert data["bootstrap-peers"] == "c-0=c-0.c-peers.ns.svc:7000"
    assert data["restore-from"] == "s3://bk/backups/ns/c"
    # once c-0 leads its restored one-voter cluster, the ordinary scale-up adds c-1, c-2
    pods, view = cluster(1)
    step = plan_scaling(C, desired=3, sts_replicas=1, pods=pods, view=view, pvcs=["data-c-0"])
    assert step == AddLearner("c-1", m.peer_address(C, "c-1"))
    pods, view = cluster(1, learners={"c-1"})
    step = plan_scaling(C, desired=3, sts_replicas=2, pods=pods, view=view, pvcs=[])
    assert step == Promote("c-1")


def test_phase_stays_restoring_until_every_member_joined() -> None:
    _, view = cluster(1, learners={"c-1"})
    joining = activity_for("Scaling", Promote("c-1"))
    assert (
        derive_phase(view, joining, bootstrapped=True, restoring=True, unschedulable=False)
        == "Restoring"
    )
    assert (
        derive_phase(view, joining, bootstrapped=True, restoring=False, unschedulable=False)
        == "Scaling"
    )
    _, whole = cluster(3)
    assert (
        derive_phase(whole, Activity(), bootstrapped=True, restoring=True, unschedulable=False)
        == "Running"
    )


def launch(tmp_path: Path, pod: str, *, data: bool = False, **env: str) -> dict[str, str]:
    """Run the real launcher under /bin/sh with a stand-in ``raftpod-sidecar`` printing its env."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    stub = bin_dir / "raftpod-sidecar"
    stub.write_text("#!/bin/sh\nenv | grep -E '^(RAFTPOD|AWS)_' | sort\n")
    stub.chmod(0o755)
    data_dir = tmp_path / f"data-{pod}"
    if data:
        data_dir.mkdir(exist_ok=True)
        (data_dir / "wal").write_text("x")
    base = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "RAFTPOD_ID": pod,
        "RAFTPOD_DATA_DIR": str(data_dir),
        "RAFTPOD_BOOTSTRAP_PEERS": "c-0=c-0.c-peers.ns.svc:7000",
        "RAFTPOD_JOIN_URL": "https://c.ns.svc:7002",
        "RAFTPOD_RESTORE_FROM": "s3://bk/p?region=r",
        "AWS_ACCESS_KEY_ID": "backup-key",
        "AWS_SECRET_ACCESS_KEY": "backup-secret",
    }
    done = subprocess.run(
        ["/bin/sh", "-c", m.LAUNCHER],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    if done.returncode != 0:
        return {"exit": str(done.returncode), "stderr": done.stderr.strip()}
    return dict(line.split("=", 1) for line in done.stdout.splitlines())


RESTORE_KEYS = {
    "RAFTPOD_RESTORE_SECRET": "old",
    "RAFTPOD_RESTORE_AWS_ACCESS_KEY_ID": "restore-key",
    "RAFTPOD_RESTORE_AWS_SECRET_ACCESS_KEY": "restore-secret",
}


def test_launcher_restores_only_on_ordinal_0_with_its_own_key_pair(tmp_path: Path) -> None:
    first = launch(tmp_path, "c-0", **RESTORE_KEYS)
    assert first["RAFTPOD_PEERS"] == "c-0=c-0.c-peers.ns.svc:7000"
    assert first["RAFTPOD_RESTORE_FROM"] == "s3://bk/p?region=r"
    assert (first["AWS_ACCESS_KEY_ID"], first["AWS_SECRET_ACCESS_KEY"]) == (
        "restore-key",
        "restore-secret",
    )
    assert not [k for k in first if k.startswith("RAFTPOD_RESTORE_AWS")]
    joiner = launch(tmp_path, "c-1", RAFTPOD_BOOTSTRAPPED="true", **RESTORE_KEYS)
    assert joiner["RAFTPOD_JOIN"] == "https://c.ns.svc:7002"
    assert "RAFTPOD_RESTORE_FROM" not in joiner and "RAFTPOD_PEERS" not in joiner
    assert joiner["AWS_ACCESS_KEY_ID"] == "backup-key"
    # a restart of the restored member keeps its data and its backup credentials
    again = launch(tmp_path, "c-0", data=True, RAFTPOD_BOOTSTRAPPED="true", **RESTORE_KEYS)
    assert again["AWS_ACCESS_KEY_ID"] == "backup-key" and "RAFTPOD_PEERS" in again


def test_launcher_refuses_a_restore_secret_without_keys(tmp_path: Path) -> None:
    failed = launch(tmp_path, "c-0", RAFTPOD_RESTORE_SECRET="old")
    assert failed == {"exit": "1", "stderr": "restore: Secret old has no accessKeyId"}


def test_repeated_sidecar_exits_are_a_failed_restore() -> None:
    assert restore_failure(None) is None
    assert restore_failure({"status": {}}) is None
    assert restore_failure(pod(RESTORE_CRASHES - 1)) is None  # one exit may be a blip
    assert restore_failure(pod(RESTORE_CRASHES, exit_code=0)) is None
    corrupt = "--restore-from: backup is corrupt: sha256 mismatch"
    problem = restore_failure(pod(RESTORE_CRASHES, message=corrupt, native=False))
    assert problem is not None and "code 1" in problem and problem.endswith(corrupt)
    bare = restore_failure(pod(5))
    assert bare is not None and "kubectl logs" in bare


def test_a_sidecar_that_cannot_even_start_is_a_failed_restore() -> None:
    waiting = {"reason": "CreateContainerConfigError", "message": 'secret "old" not found'}
    problem = restore_failure(pod(0, waiting=waiting))
    assert problem is not None and 'secret "old" not found' in problem
