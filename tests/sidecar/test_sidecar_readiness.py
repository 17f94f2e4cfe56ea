"""/readyz with real processes: removed members and a wiped follower that is behind."""

from __future__ import annotations

import shutil
import signal
import time
from functools import partial
from pathlib import Path
from typing import Any

from .cluster import Node, http, poll, running

MAX_LAG = 5


def _readyz(node: Node) -> tuple[int, dict[str, Any]]:
    answer = http("GET", node.admin + "/readyz", timeout=5)
    doc: dict[str, Any] = answer.json()
    return answer.status_code, doc


def _not_ready(node: Node) -> str | None:
    """The reason ``node`` gives for not being ready, or None while it says it is."""
    code, doc = _readyz(node)
    if code == 200:
        return None
    assert code == 503 and doc["ready"] is False, doc
    reason: str = doc["reason"]
    return reason


def _is_ready(node: Node) -> bool:
    return _readyz(node) == (200, {"ready": True})


def test_removed_voter_and_learner_stop_being_ready(tmp_path: Path) -> None:
    with running(tmp_path, 3) as cluster:
        leader = cluster.leader()
        http("PUT", leader.app + "/v1/kv/k", data=b"v").raise_for_status()
        voter = cluster.followers(leader)[0]
        learner = cluster.add("n4", join=leader.admin)
        poll(partial(_is_ready, learner), 20, "the learner to join, catch up, be ready")
        assert _is_ready(voter)
        for removed in (learner, voter):
            answer = http("DELETE", leader.admin + f"/admin/members/{removed.id}")
            assert answer.status_code == 200, answer.text
            assert removed.id not in {m["id"] for m in answer.json()["members"]}
            reason = poll(partial(_not_ready, removed), 10, f"{removed.id} to be unready")
            # the leader ignores a removed node, so it cannot confirm the commit index;
            # a removed voter also soon campaigns (in vain) and forgets the leader
            lost_leader = removed is voter and reason == "no known leader"
            assert "removed from" in reason or lost_leader, reason
            assert removed.alive  # still running: only its readiness tells Kubernetes
        remaining = [n for n in cluster.alive() if n.id not in (learner.id, voter.id)]
        assert len(remaining) == 2 and leader in remaining
        for node in remaining:
            poll(partial(_is_ready, node), 10, f"{node.id} to stay ready")


def _samples_until_ready(node: Node, seconds: float) -> list[tuple[int, str, int]]:
    """(code, reason, applied index read after it) per /readyz call until 200 or ``seconds``."""
    samples: list[tuple[int, str, int]] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        code, doc = _readyz(node)
        samples.append((code, doc.get("reason", ""), node.status()["applied_index"]))
        if code == 200:
            break
        time.sleep(0.05)
    return samples


def test_wiped_follower_is_not_ready_while_behind(tmp_path: Path) -> None:
    with running(tmp_path, 3, ("--ready-max-lag", str(MAX_LAG))) as cluster:
        leader = cluster.leader()
        victim = cluster.followers(leader)[0]
        for i in range(4 * MAX_LAG):
            http("PUT", f"{leader.app}/v1/kv/w/{i}", data=b"x").raise_for_status()
        commit = leader.status()["commit_index"]
        poll(lambda: victim.status()["applied_index"] >= commit, 10, "the victim to catch up")
        victim.kill(signal.SIGKILL)
        shutil.rmtree(victim.data_dir)
        victim.start()
        poll(lambda: victim.status()["leader"] == leader.id, 10, "the victim to see the leader")
        # no writes from here on, and the same leader: its commit index stays `commit`
        samples = _samples_until_ready(victim, 6)
        assert cluster.leader().id == leader.id
        assert leader.status()["commit_index"] == commit
        code, reason, applied = samples[-1]
        if code == 200:
            # applied is read after the answer and only grows: it bounds the node's state then
            assert applied >= commit - MAX_LAG, samples
        else:
            # still not ready after the window (catch-up broken or slow): because it is behind
            assert "trails the leader's commit index" in reason, samples
            caught_up_meanwhile = applied >= commit - MAX_LAG
            assert not caught_up_meanwhile or poll(partial(_is_ready, victim), 10, "ready")
