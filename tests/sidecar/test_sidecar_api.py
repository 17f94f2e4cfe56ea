"""The app and admin APIs of a real 3-node cluster: every endpoint and documented error."""

from __future__ import annotations

import base64
import io
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from raftpod_sidecar import backupstore, range_answer
from raftpod_sidecar.state.kv import KeyValue

from .cluster import Cluster, http, ndjson_lines, poll, running

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("api")
    token_file = root / "token"
    token_file.write_text(TOKEN + "\n")
    extra = ("--admin-token-file", str(token_file), "--max-request-bytes", "4096")
    with running(root, 3, extra, AUTH) as c:
        c.leader()
        yield c


def _follower(cluster: Cluster) -> str:
    leader = cluster.leader()
    return cluster.followers(leader)[0].app


def test_put_get_on_every_node(cluster: Cluster) -> None:
    leader = cluster.leader()
    follower = cluster.followers(leader)[0]
    put = http("PUT", follower.app + "/v1/kv/app/config", data=b"v1")
    assert put.status_code == 200, put.text
    assert put.json()["revision"] >= 1 and put.json()["index"] > 1
    for node in cluster.alive():
        got = http("GET", node.app + "/v1/kv/app/config")
        assert got.status_code == 200
        assert got.content == b"v1"
        assert got.headers["X-Raftpod-Revision"] == str(put.json()["revision"])
    stale = http("GET", follower.app + "/v1/kv/app/config?consistency=stale")
    lease_read = http("GET", leader.app + "/v1/kv/app/config?consistency=lease")
    assert stale.content == b"v1" and lease_read.content == b"v1"


def test_compare_and_set_and_delete(cluster: Cluster) -> None:
    url = _follower(cluster) + "/v1/kv/cas"
    first = http("PUT", url + "?prev_revision=0", data=b"a").json()
    conflict = http("PUT", url + "?prev_revision=0", data=b"b")
    assert conflict.status_code == 409
    assert conflict.json()["error"] == "compare_failed"
    assert conflict.json()["mod_revision"] == first["revision"]
    ok = http("PUT", url + f"?prev_revision={first['revision']}", data=b"b")
    assert ok.status_code == 200
    deleted = http("DELETE", url)
    assert deleted.status_code == 200 and deleted.json()["deleted"] == 1
    assert http("GET", url).status_code == 404
    assert http("DELETE", url).json()["deleted"] == 0


def test_range_with_prefix_and_limit(cluster: Cluster) -> None:
    app = _follower(cluster)
    for name in ("a", "b", "c"):
        assert http("PUT", f"{app}/v1/kv/range/{name}", data=name.encode()).status_code == 200
    http("PUT", f"{app}/v1/kv/rangeX", data=b"other")
    doc = http("GET", f"{app}/v1/kv?prefix=range/&limit=2").json()
    assert [i["key"] for i in doc["items"]] == ["range/a", "range/b"]
    assert base64.b64decode(doc["items"][0]["value_b64"]) == b"a"
    assert doc["more"] is True and doc["revision"] >= doc["items"][1]["revision"]


def test_a_large_range_is_written_in_pieces_whole_and_in_order(cluster: Cluster) -> None:
    app = _follower(cluster)
    count = 2 * range_answer.PIECE_ITEMS + 500
    for start in range(0, count, 25):
        ops = [
            {"op": "put", "key": f"many/{i:05d}", "value": str(i)} for i in range(start, start + 25)
        ]
        assert http("POST", f"{app}/v1/txn", json={"success": ops}).status_code == 200
    answer = http("GET", f"{app}/v1/kv?prefix=many/")
    assert answer.headers.get("Transfer-Encoding") == "chunked"  # three pieces
    doc = answer.json()
    assert [i["key"] for i in doc["items"]] == [f"many/{i:05d}" for i in range(count)]
    assert [base64.b64decode(i["value_b64"]) for i in doc["items"]] == [
        str(i).encode() for i in range(count)
    ]
    assert doc["more"] is False and doc["revision"] >= doc["items"][-1]["revision"]
    limited = http("GET", f"{app}/v1/kv?prefix=many/&limit={count - 1}").json()
    assert limited["items"] == doc["items"][:-1] and limited["more"] is True
    small = http("GET", f"{app}/v1/kv?prefix=many/&limit=3")
    assert "Transfer-Encoding" not in small.headers and len(small.json()["items"]) == 3


def test_range_pieces_are_bounded_by_items_and_by_bytes() -> None:
    big = KeyValue(b"v" * (range_answer.PIECE_BYTES // 3), 1, 1, 1, 0)
    small = KeyValue(b"v", 1, 1, 1, 0)
    keys = [f"k{i}" for i in range(7)]
    assert list(range_answer._pieces(keys, [big] * 7)) == [(0, 3), (3, 6), (6, 7)]
    many = [f"k{i}" for i in range(range_answer.PIECE_ITEMS + 1)]
    assert list(range_answer._pieces(many, [small] * len(many))) == [
        (0, range_answer.PIECE_ITEMS),
        (range_answer.PIECE_ITEMS, range_answer.PIECE_ITEMS + 1),
    ]
    assert list(range_answer._pieces([], [])) == [(0, 0)]


def test_txn_success_and_failure_branches(cluster: Cluster) -> None:
    app = _follower(cluster)
    http("PUT", f"{app}/v1/kv/txn/k", data=b"1")
    body = {
        "compare": [{"key": "txn/k", "target": "value", "op": "=", "value": "1"}],
        "success": [{"op": "put", "key": "txn/k", "value": "2"}, {"op": "get", "key": "txn/k"}],
        "failure": [{"op": "get", "key": "txn/k"}],
    }
    first = http("POST", f"{app}/v1/txn", json=body)
    assert first.status_code == 200, first.text
    assert first.json()["succeeded"] is True
    second = http("POST", f"{app}/v1/txn", json=body).json()
    assert second["succeeded"] is False
    assert base64.b64decode(second["results"][0]["kv"]["value_b64"]) == b"2"


def test_exactly_once_with_request_id(cluster: Cluster) -> None:
    leader = cluster.leader()
    follower = cluster.followers(leader)[0]
    headers = {"X-Request-Id": str(uuid.uuid4())}
    first = http("POST", follower.app + "/v1/log", data=b"once", headers=headers)
    retry_elsewhere = http("POST", leader.app + "/v1/log", data=b"once", headers=headers)
    assert first.status_code == retry_elsewhere.status_code == 200
    assert first.json() == retry_elsewhere.json()
    start = first.json()["index"]
    with http("GET", leader.app + f"/v1/log?from_index={start}", stream=True, timeout=5) as r:
        lines = ndjson_lines(r, 1, timeout=5)
    assert lines[0]["index"] == start
    assert base64.b64decode(lines[0]["data_b64"]) == b"once"
    latest = http("POST", leader.app + "/v1/log", data=b"later").json()["index"]
    with http("GET", leader.app + f"/v1/log?from_index={start}", stream=True, timeout=5) as r:
        indexes = [line["index"] for line in ndjson_lines(r, 2, timeout=5)]
    assert indexes == [start, latest]  # the retry appended nothing in between


def test_watch_streams_and_resumes_from_revision(cluster: Cluster) -> None:
    app = _follower(cluster)
    first = http("PUT", f"{app}/v1/kv/watch/x", data=b"1").json()["revision"]
    http("PUT", f"{app}/v1/kv/watch/y", data=b"2")
    http("DELETE", f"{app}/v1/kv/watch/x")
    url = f"{app}/v1/watch?prefix=watch/&from_revision={first}"
    with http("GET", url, stream=True, timeout=5) as r:
        events = ndjson_lines(r, 3, timeout=5)
    assert [(e["type"], e["key"]) for e in events] == [
        ("put", "watch/x"),
        ("put", "watch/y"),
        ("delete", "watch/x"),
    ]
    resume = events[1]["revision"] + 1
    with http("GET", f"{app}/v1/watch?prefix=watch/&from_revision={resume}", stream=True) as r:
        http("PUT", f"{app}/v1/kv/watch/z", data=b"live")
        later = ndjson_lines(r, 2, timeout=5)
    assert [(e["type"], e["key"]) for e in later] == [("delete", "watch/x"), ("put", "watch/z")]


def test_watch_from_compacted_revision_is_a_clear_error(cluster: Cluster) -> None:
    leader = cluster.leader()
    http("PUT", leader.app + "/v1/kv/compact/me", data=b"x")
    # A node restarted from its own snapshot has no watch history before it.
    follower = cluster.followers(leader)[0]
    snap = http("POST", follower.admin + "/admin/snapshot", headers=AUTH)
    assert snap.status_code == 200 and snap.json()["index"] > 1
    follower.kill()
    follower.start()
    poll(lambda: follower.status()["leader"], 15, "the restarted follower to see a leader")
    answer = http("GET", follower.app + "/v1/watch?from_revision=1", timeout=5)
    assert answer.status_code == 410
    assert answer.json()["error"] == "compacted"
    assert "oldest retained revision" in answer.json()["message"]
    assert http("GET", follower.app + "/v1/kv/compact/me").content == b"x"


def test_leases_keepalive_and_expiry_delete_keys(cluster: Cluster) -> None:
    app = _follower(cluster)
    grant = http("POST", f"{app}/v1/leases", json={"ttl_seconds": 1})
    assert grant.status_code == 200, grant.text
    lease = grant.json()["id"]
    assert grant.json()["ttl_seconds"] == 1
    assert http("PUT", f"{app}/v1/kv/leased?lease={lease}", data=b"tmp").status_code == 200
    info = http("GET", f"{app}/v1/leases/{lease}").json()
    assert info == {"id": lease, "ttl_seconds": 1, "keys": ["leased"]}
    assert http("POST", f"{app}/v1/leases/{lease}/keepalive").json()["ttl_seconds"] == 1
    poll(
        lambda: http("GET", f"{app}/v1/kv/leased").status_code == 404,
        10,
        "the leased key to be deleted on expiry",
    )
    assert http("GET", f"{app}/v1/leases/{lease}").status_code == 404
    assert http("POST", f"{app}/v1/leases/{lease}/keepalive").status_code == 404
    bad = http("PUT", f"{app}/v1/kv/leased?lease={lease}", data=b"x")
    assert bad.status_code == 404 and bad.json()["error"] == "lease_not_found"
    other = http("POST", f"{app}/v1/leases", json={"ttl_seconds": 60}).json()["id"]
    assert http("DELETE", f"{app}/v1/leases/{other}").status_code == 200


def test_leader_and_status(cluster: Cluster) -> None:
    leader = cluster.leader()
    for node in cluster.alive():
        doc = http("GET", node.app + "/v1/leader").json()
        assert doc["leader_id"] == leader.id
        assert doc["is_self"] is (node.id == leader.id)
        assert doc["term"] >= 1
        status = http("GET", node.app + "/v1/status").json()
        assert status["id"] == node.id and status["applied_index"] >= 1
        assert {m["id"] for m in status["members"]} == {"n1", "n2", "n3"}


ERROR_CASES = [
    ("POST", "/v1/txn", b"{not json", 400, "bad_request"),
    ("POST", "/v1/txn", b'{"compare": [{"target": "nope"}]}', 400, "bad_request"),
    ("POST", "/v1/leases", b'{"ttl_seconds": -1}', 400, "bad_request"),
    ("PUT", "/v1/kv/x?prev_revision=abc", b"", 400, "bad_request"),
    ("GET", "/v1/kv/x?consistency=eventual", b"", 400, "bad_request"),
    ("GET", "/v1/kv/does-not-exist", b"", 404, "not_found"),
    ("GET", "/v1/nothing-here", b"", 404, "not_found"),
    ("POST", "/v1/kv/x", b"", 405, "method_not_allowed"),
    ("PUT", "/v1/kv/big", b"x" * 5000, 413, "too_large"),
    ("POST", "/v1/log", b"", 400, "bad_request"),
    ("PUT", f"/v1/kv/x?lease={10**23}", b"", 400, "bad_request"),
    ("DELETE", f"/v1/leases/{10**23}", b"", 400, "bad_request"),
]


@pytest.mark.parametrize("case", ERROR_CASES, ids=lambda c: f"{c[0]} {c[1][:30]} {c[3]}")
def test_documented_errors(cluster: Cluster, case: tuple[str, str, bytes, int, str]) -> None:
    method, path, body, code, error = case
    answer = http(method, _follower(cluster) + path, data=body)
    assert answer.status_code == code, answer.text
    doc = answer.json()
    assert doc["error"] == error and doc["message"]


def test_invalid_key_is_400(cluster: Cluster) -> None:
    answer = http("PUT", _follower(cluster) + "/v1/kv/" + "k" * 5000, data=b"v")
    assert answer.status_code == 400
    assert "longer than 4096 bytes" in answer.json()["message"]
    # 'é' is 2 bytes, 6 characters percent-encoded: 2,048 of them make the longest
    # key, a 12 KiB request line (aiohttp's default limit of 8190 refused it)
    longest = "é" * 2048
    assert http("PUT", _follower(cluster) + "/v1/kv/" + longest, data=b"v").status_code == 200
    assert http("GET", _follower(cluster) + "/v1/kv/" + longest).content == b"v"
    answer = http("PUT", _follower(cluster) + "/v1/kv/" + longest + "é", data=b"v")
    assert answer.status_code == 400
    assert "longer than 4096 bytes" in answer.json()["message"]


def test_admin_token_is_enforced(cluster: Cluster) -> None:
    node = cluster.leader()
    assert http("GET", node.admin + "/admin/status").status_code == 401
    wrong = http("GET", node.admin + "/admin/status", headers={"Authorization": "Bearer no"})
    assert wrong.status_code == 401 and wrong.json()["error"] == "unauthorized"
    assert http("GET", node.admin + "/admin/status", headers=AUTH).status_code == 200
    internal = http("PUT", node.admin + "/internal/app/v1/kv/sneaky", data=b"x")
    assert internal.status_code == 401
    assert http("GET", node.admin + "/healthz").json() == {"ok": True}


def test_readyz_and_status_fields(cluster: Cluster) -> None:
    leader = cluster.leader()
    for node in cluster.alive():
        ready = http("GET", node.admin + "/readyz")
        assert ready.status_code == 200 and ready.json() == {"ready": True}
    status = http("GET", leader.admin + "/admin/status", headers=AUTH).json()
    assert status["role"] == "leader" and status["leader"] == leader.id
    assert status["commit_index"] >= status["first_index"] - 1
    assert all("match_index" in m and "lag" in m for m in status["members"])


def test_metrics_exposed(cluster: Cluster) -> None:
    leader = cluster.leader()
    http("PUT", leader.app + "/v1/kv/metrics", data=b"1")
    text = http("GET", leader.admin + "/metrics").text
    for name in (
        "raft_current_term",
        f'raft_state{{node="{leader.id}",state="leader"}} 1.0',
        "raft_commit_index",
        "raft_applied_index",
        "raft_last_log_index",
        "raft_election_timeout_seconds",
        "raft_leader_changes_total",
        'raft_proposals_total{result="ok"}',
        "raft_append_entries_sent_total",
        "raft_wal_fsync_seconds_bucket",
        "raft_apply_seconds_bucket",
        "raft_snapshot_total",
        "raft_snapshot_duration_seconds",
        "raftpod_backup_last_success_timestamp_seconds",
        "raftpod_backup_failures_total",
        'raftpod_http_requests_total{code="200",route="/v1/kv/{key}"}',
        "raftpod_http_request_seconds_bucket",
    ):
        assert name in text, name


def test_backup_to_file_and_a_bad_url(cluster: Cluster, tmp_path: Path) -> None:
    leader = cluster.leader()
    http("PUT", leader.app + "/v1/kv/backed/up", data=b"safe")
    for _ in range(2):
        answer = http("POST", leader.admin + "/admin/backup", headers=AUTH,
                      json={"url": tmp_path.as_uri(), "cluster": "c1", "retain": 1})  # fmt: skip
        assert answer.status_code == 200, answer.text
    meta = answer.json()
    written = Path(meta["url"].removeprefix("file://"))
    assert meta["index"] > 1 and meta["bytes"] == written.stat().st_size
    assert [p.name for p in written.parent.glob("*.snap")] == [written.name]  # retain 1
    assert (
        backupstore.open_store(tmp_path.as_uri()).get(None, io.BytesIO()).sha256 == meta["sha256"]
    )
    bad = http("POST", leader.admin + "/admin/backup", headers=AUTH, json={"url": "s3://b/p"})
    assert bad.status_code == 400 and "not a valid S3 bucket name" in bad.json()["message"]
    metrics = http("GET", leader.admin + "/metrics").text
    assert "raftpod_backup_last_success_timestamp_seconds 0.0" not in metrics


def test_garbage_on_peer_port_keeps_serving(cluster: Cluster) -> None:
    leader = cluster.leader()
    for payload in (b"\x00\x00\x00\x10garbage-garbage!", b"GET / HTTP/1.1\r\n\r\n", b"\xff" * 64):
        with socket.create_connection(("127.0.0.1", leader.peer_port), timeout=2) as s:
            s.sendall(payload)
    assert http("PUT", leader.app + "/v1/kv/after-garbage", data=b"ok").status_code == 200
    assert cluster.leader().id == leader.id

    def rejected() -> bool:
        text = http("GET", leader.admin + "/metrics").text
        counts = re.findall(
            r"^raftpod_peer_(?:handshake_failures|malformed|oversized)_total (\S+)$", text, re.M
        )
        return sum(float(c) for c in counts) >= 3

    poll(rejected, 10, "the three garbage connections to be counted")


def test_transfer_leadership_via_admin(cluster: Cluster) -> None:
    leader = cluster.leader()
    target = cluster.followers(leader)[0]
    codes: list[int] = []

    def write_during_transfer() -> None:
        for i in range(30):
            codes.append(http("PUT", f"{leader.app}/v1/kv/moving/{i}", data=b"x").status_code)

    writer = threading.Thread(target=write_during_transfer)
    writer.start()
    started = time.monotonic()
    # asked on the other follower: forwarded to the leader
    via = cluster.followers(leader)[1]
    answer = http("POST", via.admin + "/admin/transfer-leadership", headers=AUTH,
                  json={"to": target.id})  # fmt: skip
    writer.join(timeout=60)
    assert codes == [200] * 30  # writes during the hand-over are refused, then forwarded
    assert answer.status_code == 200, answer.text
    assert answer.json()["leader"] == target.id
    assert cluster.leader().id == target.id
    assert time.monotonic() - started < 10
    auto = http("POST", target.admin + "/admin/transfer-leadership", headers=AUTH, json={})
    assert auto.status_code == 200 and auto.json()["leader"] != target.id
