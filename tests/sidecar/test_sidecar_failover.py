"""Cluster behaviour with real processes: failover, catch-up, snapshots, membership, quorum loss."""

from __future__ import annotations

import base64
import json
import shutil
import signal
import socket
import time
from pathlib import Path

import requests

from raftpod_sidecar.api_app import PROGRESS_SECONDS

from .cluster import http, metric_total, ndjson_lines, poll, running


def _put(url: str, key: str, value: bytes) -> None:
    answer = http("PUT", f"{url}/v1/kv/{key}", data=value)
    assert answer.status_code == 200, answer.text


def test_failover_after_kill_and_restart_catch_up(tmp_path: Path) -> None:
    with running(tmp_path, 3) as cluster:
        leader = cluster.leader()
        first_term = leader.status()["term"]
        _put(leader.app, "before", b"1")
        leader.kill(signal.SIGKILL)
        survivors = cluster.alive()
        started = time.monotonic()
        new_leader = cluster.leader(timeout=10)
        assert new_leader.id != leader.id
        assert new_leader.status()["term"] > first_term
        assert time.monotonic() - started < 8
        # the acknowledged write survived; writes keep working on any survivor
        assert http("GET", survivors[0].app + "/v1/kv/before").content == b"1"
        for i in range(20):
            _put(survivors[i % 2].app, f"during/{i}", str(i).encode())
        leader.start()
        cluster.leader()
        commit = new_leader.status()["commit_index"]
        poll(
            lambda: leader.status()["applied_index"] >= commit,
            15,
            "the restarted node to catch up",
        )
        doc = http("GET", leader.app + "/v1/kv?prefix=during/&consistency=stale").json()
        assert len(doc["items"]) == 20
        term = new_leader.status()["term"]
        assert f'msg="became leader" term={term} node={new_leader.id}' in new_leader.log_text()


def test_no_quorum_answers_503_within_a_bounded_wait(tmp_path: Path) -> None:
    with running(tmp_path, 3) as cluster:
        leader = cluster.leader()
        for node in cluster.followers(leader):
            node.kill(signal.SIGKILL)
        started = time.monotonic()
        answer = http("PUT", leader.app + "/v1/kv/lost", data=b"x", timeout=15)
        elapsed = time.monotonic() - started
        assert answer.status_code in (503, 504), answer.text
        assert elapsed < 5.0  # --request-timeout-ms 2000 plus slack for a loaded machine
        # once the leader stepped down (check-quorum), every request is a fast-enough 503
        poll(lambda: leader.status()["leader"] is None, 5, "the lone leader to step down")
        started = time.monotonic()
        answer = http("PUT", leader.app + "/v1/kv/lost", data=b"x", timeout=15)
        assert answer.status_code == 503 and answer.json()["error"] == "no_leader"
        read = http("GET", leader.app + "/v1/kv/lost", timeout=15)
        assert read.status_code == 503
        assert time.monotonic() - started < 8.0  # two bounded waits of 2 s each
        assert http("GET", leader.app + "/v1/kv/lost?consistency=stale").status_code == 404
        # cut off from the cluster, it soon loses its leader and is not ready
        poll(lambda: http("GET", leader.admin + "/readyz").status_code == 503, 10,
             "the removed node to report not ready")  # fmt: skip


def test_snapshot_installed_on_a_wiped_follower(tmp_path: Path) -> None:
    with running(tmp_path, 3, ("--snapshot-entries", "20")) as cluster:
        leader = cluster.leader()
        for i in range(60):
            _put(leader.app, f"snap/{i:02d}", b"v" * 100)
        victim = cluster.followers(leader)[0]
        victim.kill(signal.SIGKILL)
        for i in range(60, 200):
            _put(leader.app, f"snap/{i:02d}", b"w")
        poll(lambda: leader.status()["first_index"] > 2, 10, "the leader to compact its log")
        shutil.rmtree(victim.data_dir)
        victim.start()
        commit = leader.status()["commit_index"]
        poll(lambda: victim.status()["applied_index"] >= commit, 20, "the wiped node to catch up")
        assert victim.status()["snapshot_index"] > 1
        doc = http("GET", victim.app + "/v1/kv?prefix=snap/&consistency=stale").json()
        assert len(doc["items"]) == 200
        assert base64.b64decode(doc["items"][0]["value_b64"]) == b"v" * 100
        assert "installed snapshot" in victim.log_text()


def test_long_work_on_the_leader_misses_no_heartbeat(tmp_path: Path) -> None:
    # Done at once on the event loop, a 99 MB snapshot and a 200,000-key range each
    # held the leader for longer than an election timeout; its followers elected
    # another leader (3 of 3 runs for the snapshot, 2 of 2 for the range).
    with running(tmp_path, 3) as cluster:
        leader = cluster.leader()
        term = leader.status()["term"]
        logged = {node.id: len(node.log_text()) for node in cluster.nodes.values()}

        def no_election_since_start() -> None:
            for node in cluster.nodes.values():
                assert node.status()["term"] == term
                # not even a pre-vote: no follower's election timer ran out
                assert "became pre-candidate" not in node.log_text()[logged[node.id] :]

        value = b"v" * 900_000
        for i in range(110):  # ~99 MB of state
            _put(leader.app, f"big/{i}", value)
        answer = http("POST", leader.admin + "/admin/snapshot")
        assert answer.status_code == 200, answer.text
        assert answer.json()["bytes"] > 99_000_000
        no_election_since_start()
        count = 200_000
        for start in range(0, count, 5000):
            ops = [
                {"op": "put", "key": f"r/{i:06d}", "value": "v" * 100}
                for i in range(start, start + 5000)
            ]
            assert http("POST", f"{leader.app}/v1/txn", json={"success": ops}).status_code == 200
        doc = http("GET", f"{leader.app}/v1/kv?prefix=r/").json()
        assert len(doc["items"]) == count and doc["items"][-1]["key"] == f"r/{count - 1:06d}"
        no_election_since_start()
        assert leader.status()["leader"] == leader.id


def test_join_promote_and_remove_members(tmp_path: Path) -> None:
    with running(tmp_path, 3) as cluster:
        leader = cluster.leader()
        _put(leader.app, "existing", b"data")
        via = cluster.followers(leader)[0]
        joiner = cluster.add("n4", join=via.admin)

        def learner_caught_up() -> bool:
            members = {m["id"]: m for m in leader.status()["members"]}
            return "n4" in members and not members["n4"]["voter"] and members["n4"]["lag"] == 0

        poll(learner_caught_up, 20, "n4 to join as a learner and catch up")
        assert http("GET", joiner.app + "/v1/kv/existing?consistency=stale").content == b"data"
        promoted = http("POST", via.admin + "/admin/members/n4/promote")
        assert promoted.status_code == 200, promoted.text
        assert {"id": "n4", "address": joiner.peer_address, "voter": True} in promoted.json()[
            "members"
        ]
        again = http("POST", leader.admin + "/admin/members/n4/promote")
        assert again.status_code == 409
        removed = http("DELETE", leader.admin + f"/admin/members/{via.id}")
        assert removed.status_code == 200, removed.text
        assert via.id not in {m["id"] for m in removed.json()["members"]}
        via.kill()
        poll(lambda: joiner.status()["role"] == "follower" or joiner.status()["role"] == "leader",
             10, "n4 to act as a voter")  # fmt: skip
        _put(joiner.app, "after-change", b"ok")
        assert http("GET", leader.app + "/v1/kv/after-change").content == b"ok"
        bad = http("POST", leader.admin + "/admin/members", json={"id": "n9"})
        assert bad.status_code == 400
        for doc, says in [
            ({"id": "n9", "address": "127.0.0.1:x"}, "address must be host:port"),
            ({"id": "n/9", "address": "127.0.0.1:7000"}, "node id 'n/9' must be"),
            ({"id": "n 9", "address": "127.0.0.1:7000"}, "node id 'n 9' must be"),
        ]:
            bad = http("POST", leader.admin + "/admin/members", json=doc)
            assert bad.status_code == 400 and says in bad.json()["message"], bad.text
        assert "n9" not in {m["id"] for m in leader.status()["members"]}
        # the leader removing itself hands leadership over first, then is removed
        itself = http("DELETE", leader.admin + f"/admin/members/{leader.id}")
        assert itself.status_code == 200, itself.text
        assert [m["id"] for m in itself.json()["members"]] == sorted(
            {"n1", "n2", "n3", "n4"} - {via.id, leader.id}
        )
        remaining = [n for n in cluster.alive() if n.id not in (via.id, leader.id)]
        assert cluster.leader(among=remaining).id != leader.id
        # cut off from the cluster, it soon loses its leader and is not ready
        poll(lambda: http("GET", leader.admin + "/readyz").status_code == 503, 10,
             "the removed node to report not ready")  # fmt: skip


def test_restore_from_file_backup(tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    with running(tmp_path / "source", 1) as source:
        node = source.leader()
        _put(node.app, "keep/me", b"precious")
        answer = http("POST", node.admin + "/admin/backup", json={"url": backups.as_uri()})
        assert answer.status_code == 200, answer.text
    flags = ("--restore-from", backups.as_uri(), "--log-format", "json")
    with running(tmp_path / "restored", 3, flags) as restored:
        leader = restored.leader()
        for n in restored.alive():
            assert http("GET", n.app + "/v1/kv/keep/me").content == b"precious"
        _put(leader.app, "keep/new", b"write after restore")
        lines = [json.loads(line) for line in leader.log_text().splitlines()]
        restored_line = next(x for x in lines if x["msg"] == "restored from backup")
        assert restored_line["node"] == leader.id and restored_line["index"] > 1
        assert any(x["msg"] == "became leader" and x["term"] >= 1 for x in lines)


def test_a_closed_watch_ends_at_the_next_apply_not_the_next_progress_line(
    tmp_path: Path,
) -> None:
    # A watch on a quiet prefix whose client left was woken by every apply and
    # lingered until its next progress line failed to write (up to 10 s).
    with running(tmp_path, 1) as cluster:
        node = cluster.leader()

        def watches_done() -> float:
            return metric_total(
                node.admin,
                "raftpod_http_requests_total",
                lambda labels: labels.get("route") == "/v1/watch",
            )

        with socket.create_connection(("127.0.0.1", node.app_port), timeout=10) as conn:
            conn.sendall(b"GET /v1/watch?prefix=quiet/ HTTP/1.1\r\nHost: raftpod\r\n\r\n")
            assert conn.recv(4096).startswith(b"HTTP/1.1 200")  # the stream is open
        assert watches_done() == 0

        def ended_after_a_write() -> bool:
            _put(node.app, "busy/x", b"1")  # an apply wakes every stream
            return watches_done() == 1

        poll(ended_after_a_write, PROGRESS_SECONDS / 2, "the closed watch to end")


def test_sigterm_ends_open_streams_and_the_node_exits_at_once(tmp_path: Path) -> None:
    # A watch whose client kept reading held the node's exit for 120 s (aiohttp's
    # shutdown waits for open handlers), past a pod's 30 s grace period: every such
    # SIGTERM became a SIGKILL. Here it failed after 10 s (the next progress line).
    with running(tmp_path, 1) as cluster:
        node = cluster.leader()
        watch = requests.get(node.app + "/v1/watch?prefix=w/", stream=True, timeout=30)
        log = requests.get(node.app + "/v1/log?from_index=1", stream=True, timeout=30)
        _put(node.app, "w/1", b"x")
        assert http("POST", node.app + "/v1/log", data=b"cmd").status_code == 200
        assert ndjson_lines(watch, 1, 10)[0]["key"] == "w/1"
        assert base64.b64decode(ndjson_lines(log, 1, 10)[0]["data_b64"]) == b"cmd"
        started = time.monotonic()
        node.kill(signal.SIGTERM)
        assert node.proc is not None and node.proc.returncode == 0
        assert time.monotonic() - started < 5.0
        assert 'msg="node stopped" code=0' in node.log_text()
        # each stream ended cleanly (chunked terminator), so a client sees the end and resumes
        assert [line for line in watch.iter_lines() if line] == []
        assert [line for line in log.iter_lines() if line] == []
