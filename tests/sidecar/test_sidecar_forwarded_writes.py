"""Writes on a follower go to the leader inside the peer transport (PROP), exactly once.

Real 3-node clusters on loopback: the follower answers after applying the entry
itself, never over the HTTP forwarding route, and its per-node session slots
(or the client's ``X-Request-Id``) make re-sent proposals apply once, even when
the leader is killed mid-burst.
"""

from __future__ import annotations

import base64
import functools
import json
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import pytest
import requests

from .cluster import FAST_FLAGS, Cluster, Node, http, metric_total, poll, running

REQUEST_TIMEOUT = int(FAST_FLAGS[FAST_FLAGS.index("--request-timeout-ms") + 1]) / 1000
SLACK = 2.5  # seconds on top of the request timeout for a loaded 2-core machine
INTERNAL_APP_PREFIX = "/internal/app"  # the leader's route for HTTP-forwarded app writes


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running(tmp_path_factory.mktemp("forwarded"), 3) as c:
        c.leader()
        yield c


def _append(url: str, body: bytes, headers: dict[str, str] | None = None) -> requests.Response:
    return http("POST", url + "/v1/log", data=body, headers=headers or {})


def _ok(answer: requests.Response) -> dict[str, Any]:
    assert answer.status_code == 200, answer.text
    doc: dict[str, Any] = answer.json()
    return doc


def _log(node: Node, from_index: int, until_index: int) -> dict[int, bytes]:
    """``node``'s opaque log commands from ``from_index`` up to one at ``until_index``."""
    entries: dict[int, bytes] = {}
    deadline = time.monotonic() + 10
    url = f"{node.app}/v1/log?from_index={from_index}"
    with http("GET", url, stream=True, timeout=5) as stream:
        for raw in stream.iter_lines():
            doc = json.loads(raw) if raw else {}
            if "index" in doc:
                entries[doc["index"]] = base64.b64decode(doc["data_b64"])
            if doc.get("index", 0) >= until_index or time.monotonic() > deadline:
                break
    assert until_index in entries, f"the log stream on {node.id} stopped before {until_index}"
    return entries


def _log_until_marker(node: Node, from_index: int) -> dict[int, bytes]:
    """Everything logged since ``from_index``, closed by a marker appended on ``node``."""
    marker = _ok(_append(node.app, f"marker-{uuid.uuid4()}".encode()))["index"]
    return _log(node, from_index, marker)


def _internal_forwards(node: Node) -> float:
    """HTTP requests ``node`` served on its internal forwarded-app routes, any status."""
    return metric_total(
        node.admin,
        "raftpod_http_requests_total",
        lambda labels: labels["route"].startswith(INTERNAL_APP_PREFIX),
    )


def _proposals_ok(node: Node) -> float:
    return metric_total(
        node.admin, "raft_proposals_total", lambda labels: labels.get("result") == "ok"
    )


def _run_all(
    calls: list[Callable[[], requests.Response]],
    workers: int,
    on_answer: Callable[[], None] = lambda: None,
) -> list[requests.Response]:
    """Run ``calls`` on ``workers`` threads; answers in call order, each within a bound."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(call): i for i, call in enumerate(calls)}
        answers: list[requests.Response | None] = [None] * len(calls)
        for future in as_completed(futures, timeout=60):
            answers[futures[future]] = future.result()
            on_answer()
    assert all(a is not None for a in answers)
    return [a for a in answers if a is not None]


def _appends(nodes: list[Node], bodies: list[bytes]) -> list[Callable[[], requests.Response]]:
    """One append per body, spread round-robin over ``nodes``."""
    return [
        functools.partial(_append, nodes[i % len(nodes)].app, body) for i, body in enumerate(bodies)
    ]


def _burst(
    nodes: list[Node], bodies: list[bytes], midway: Callable[[], None], after: int
) -> list[requests.Response]:
    """Append ``bodies`` via ``nodes`` on 16 threads; ``midway()`` runs after ``after`` answers."""
    answered, lock, enough = [0], threading.Lock(), threading.Event()

    def count() -> None:
        with lock:
            answered[0] += 1
            if answered[0] >= after:
                enough.set()

    with ThreadPoolExecutor(max_workers=1) as runner:
        burst = runner.submit(_run_all, _appends(nodes, bodies), 16, count)
        assert enough.wait(timeout=30), f"only {answered[0]} of {after} appends answered"
        midway()
        return burst.result(timeout=90)


def _assert_sound(
    logged: dict[int, bytes], bodies: list[bytes], answers: list[requests.Response]
) -> None:
    """No body is logged twice; each 200 names the index its body was logged at."""
    counts = Counter(logged.values())
    twice = [body for body in bodies if counts[body] > 1]
    assert not twice, f"{len(twice)} appends applied more than once, e.g. {twice[0]!r}"
    for body, answer in zip(bodies, answers, strict=True):
        if answer.status_code == 200:
            assert logged.get(answer.json()["index"]) == body, answer.text


def test_follower_put_answers_like_the_leader_after_applying_it(cluster: Cluster) -> None:
    leader = cluster.leader()
    followers = cluster.followers(leader)
    on_leader = _ok(http("PUT", leader.app + "/v1/kv/fw/shape", data=b"leader"))
    previous = on_leader
    for i in range(10):
        follower = followers[i % 2]
        key = f"fw/applied/{i}"
        put = _ok(http("PUT", f"{follower.app}/v1/kv/{key}", data=f"v{i}".encode()))
        assert {k: type(v) for k, v in put.items()} == {k: type(v) for k, v in on_leader.items()}
        assert put["index"] > previous["index"] and put["revision"] > previous["revision"]
        stale = http("GET", f"{follower.app}/v1/kv/{key}?consistency=stale")
        assert stale.status_code == 200 and stale.content == f"v{i}".encode()
        assert stale.headers["X-Raftpod-Revision"] == str(put["revision"])
        previous = put


def test_follower_writes_never_use_the_http_forwarding_route(cluster: Cluster) -> None:
    leader = cluster.leader()
    follower = cluster.followers(leader)[0]
    before = {n.id: _internal_forwards(n) for n in cluster.alive()}
    proposed_before = _proposals_ok(follower)
    _ok(http("PUT", follower.app + "/v1/kv/fw/route", data=b"1"))
    _ok(http("DELETE", follower.app + "/v1/kv/fw/route"))
    txn = {"success": [{"op": "put", "key": "fw/txn", "value": "x"}]}
    _ok(http("POST", follower.app + "/v1/txn", json=txn))
    _ok(_append(follower.app, b"route"))
    lease = _ok(http("POST", follower.app + "/v1/leases", json={"ttl_seconds": 30}))
    assert {n.id: _internal_forwards(n) for n in cluster.alive()} == before
    assert _proposals_ok(follower) == proposed_before + 5  # answered by the PROP path
    # the observable works: a keep-alive is still forwarded over HTTP, and is counted
    kept = http("POST", f"{follower.app}/v1/leases/{lease['id']}/keepalive")
    assert kept.status_code == 200, kept.text
    assert _internal_forwards(leader) == before[leader.id] + 1
    _ok(http("DELETE", f"{follower.app}/v1/leases/{lease['id']}"))  # no expiry entry later


def test_request_id_through_a_follower_applies_once(cluster: Cluster) -> None:
    leader = cluster.leader()
    first_follower, other = cluster.followers(leader)
    start = _ok(_append(leader.app, b"before"))["index"]
    headers = {"X-Request-Id": str(uuid.uuid4())}
    body = b"request-id-once"
    first = _ok(_append(first_follower.app, body, headers))
    again = _ok(_append(first_follower.app, body, headers))
    concurrent = _run_all(
        [
            lambda: _append(first_follower.app, body, headers),
            lambda: _append(other.app, body, headers),
        ],
        workers=2,
    )
    assert again == first
    assert [_ok(a) for a in concurrent] == [first, first]
    logged = _log_until_marker(leader, start)
    assert [i for i, data in logged.items() if data == body] == [first["index"]]
    # a keyed write retried with its X-Request-Id: one revision, one application
    put_headers = {"X-Request-Id": str(uuid.uuid4())}
    put = _ok(http("PUT", other.app + "/v1/kv/fw/once", data=b"a", headers=put_headers))
    retry = _ok(http("PUT", other.app + "/v1/kv/fw/once", data=b"a", headers=put_headers))
    assert retry == put
    got = http("GET", other.app + "/v1/kv/fw/once")
    assert got.headers["X-Raftpod-Revision"] == str(put["revision"])
    assert http("GET", other.app + "/v1/kv?prefix=fw/once").json()["revision"] == put["revision"]


def test_concurrent_follower_appends_apply_exactly_once(cluster: Cluster) -> None:
    leader = cluster.leader()
    followers = cluster.followers(leader)
    start = _ok(_append(leader.app, b"before-burst"))["index"]
    bodies = [f"burst-{i}-{uuid.uuid4()}".encode() for i in range(200)]
    answers = _run_all(_appends(followers, bodies), workers=24)
    assert [a.status_code for a in answers] == [200] * len(bodies)
    _assert_sound(_log_until_marker(leader, start), bodies, answers)


def test_leadership_transfer_mid_burst_loses_and_repeats_nothing(cluster: Cluster) -> None:
    leader = cluster.leader()
    followers = cluster.followers(leader)
    target = followers[0]
    start = _ok(_append(leader.app, b"before-transfer"))["index"]
    bodies = [f"transfer-{i}-{uuid.uuid4()}".encode() for i in range(160)]

    def transfer() -> None:
        moved = http("POST", leader.admin + "/admin/transfer-leadership", json={"to": target.id})
        assert moved.status_code == 200, moved.text

    answers = _burst(followers, bodies, transfer, after=40)
    # PROPs the old leader dropped mid-transfer are re-sent to the new one
    assert Counter(a.status_code for a in answers) == {200: len(bodies)}
    assert cluster.leader().id == target.id
    _assert_sound(_log_until_marker(target, start), bodies, answers)


def test_the_first_follower_write_after_a_leader_change_is_proposed_once(
    cluster: Cluster,
) -> None:
    old = cluster.leader()
    target = cluster.followers(old)[0]
    moved = http("POST", old.admin + "/admin/transfer-leadership", json={"to": target.id})
    assert moved.status_code == 200, moved.text
    assert cluster.leader().id == target.id  # every node has seen the change
    _ok(_append(target.app, b"after-the-change"))  # behind the new leader's own entries
    for follower in cluster.followers(target):
        first = _ok(_append(follower.app, b"first-forwarded"))["index"]
        second = _ok(_append(follower.app, b"second-forwarded"))["index"]
        assert (follower.id, second) == (follower.id, first + 1)  # nothing in between


def test_leader_killed_mid_burst_acknowledged_appends_apply_once(tmp_path: Path) -> None:
    with running(tmp_path, 3) as cluster:
        old_leader = cluster.leader()
        survivors = cluster.followers(old_leader)
        start = _ok(_append(old_leader.app, b"before-kill"))["index"]
        bodies = [f"kill-{i}-{uuid.uuid4()}".encode() for i in range(240)]
        answers = _burst(survivors, bodies, lambda: old_leader.kill(signal.SIGKILL), after=60)
        statuses = Counter(a.status_code for a in answers)
        assert set(statuses) <= {200, 503, 504}, statuses
        for a in answers:
            if a.status_code != 200:
                assert a.json()["error"] == ("timeout" if a.status_code == 504 else "no_leader")
        assert statuses[200] > 60, statuses  # writes went on after the kill
        new_leader = cluster.leader(among=survivors)
        logged = _log_until_marker(new_leader, start)
        _assert_sound(logged, bodies, answers)
        # the killed node comes back and holds the very same log
        old_leader.start()
        marker = max(logged)
        poll(lambda: old_leader.status()["applied_index"] >= marker, 20, "the restart to catch up")
        assert _log(old_leader, start, marker) == logged


def test_cut_off_follower_answers_no_leader_or_timeout_in_time(tmp_path: Path) -> None:
    with running(tmp_path, 3) as cluster:
        leader = cluster.leader()
        lone = cluster.followers(leader)[0]
        for node in cluster.alive():
            if node is not lone:
                node.kill(signal.SIGKILL)

        def timed_put(key: str) -> tuple[int, str, float]:
            started = time.monotonic()
            answer = http("PUT", f"{lone.app}/v1/kv/{key}", data=b"lost", timeout=15)
            return answer.status_code, answer.json()["error"], time.monotonic() - started

        # right after the kill it may still believe in its leader: sent, outcome unknown
        status, code, elapsed = timed_put("fw/lost/1")
        assert (status, code) in {(503, "no_leader"), (504, "timeout")}
        assert elapsed < REQUEST_TIMEOUT + SLACK
        poll(lambda: lone.status()["leader"] is None, 10, "the lone follower to lose its leader")
        status, code, elapsed = timed_put("fw/lost/2")
        assert (status, code) == (503, "no_leader")
        assert REQUEST_TIMEOUT - 0.2 <= elapsed < REQUEST_TIMEOUT + SLACK
        for key in ("fw/lost/1", "fw/lost/2"):
            assert http("GET", f"{lone.app}/v1/kv/{key}?consistency=stale").status_code == 404
