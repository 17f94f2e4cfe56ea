"""Jepsen-style: real nodes, real faults, a recorded history checked for linearizability.

Three ``raftpod-sidecar`` processes (the ``proxied`` fixture, see ``proxied``)
talk to each other only through the fault-injecting proxy. Four clients, one per node and a
second one on n1, put, read and compare-and-set a few keys while the nemesis
kills and restarts, pauses and continues, and partitions nodes (symmetric,
minority/majority and one-way cuts, blackholed or reset) for a bounded time.
Then everything is healed, a leader must emerge, every node is read, and
``porcupine-check`` must find the whole history linearizable: no stale read,
no acknowledged write lost, nothing a failed write did seen. Finally every
node must hold the same data.

``RAFTPOD_CHAOS_SEED`` (default 1) picks the fault schedule;
``RAFTPOD_CHAOS_SECONDS`` (default 30) how long faults go on. The history is
kept in the test's ``tmp_path`` (history.json, and linearizability.html when
it is not linearizable) with the node logs.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import random
import time
from pathlib import Path
from typing import Any

import pytest

from ..sidecar.cluster import Cluster, http, poll
from .checker import check
from .clients import Client
from .history import FAIL, OK, History
from .nemesis import Fault, Kind, Nemesis, links_for, plan
from .proxied import LEADER_TIMEOUT, NODES, Proxied

CLIENTS = 4
KEYS = ("k0", "k1", "k2", "k3")
SEED = int(os.environ.get("RAFTPOD_CHAOS_SEED", "1"))
CHAOS_SECONDS = float(os.environ.get("RAFTPOD_CHAOS_SECONDS", "30"))
FINAL_READ_SECONDS = 20.0


async def _workload(
    cluster: Cluster, nemesis: Nemesis, history: History, rng: random.Random
) -> list[Fault]:
    """Clients and nemesis until CHAOS_SECONDS pass; returns the faults planned."""
    faults = plan(rng, list(cluster.nodes), CHAOS_SECONDS)
    deadline = time.monotonic() + CHAOS_SECONDS
    nodes = list(cluster.nodes.values())
    async with contextlib.AsyncExitStack() as stack:
        clients = []
        for i in range(CLIENTS):
            node = nodes[i % len(nodes)]
            client = Client(i, CLIENTS, node.id, node.app, history=history, rng=rng_from(rng))
            clients.append(await stack.enter_async_context(client))
        await asyncio.gather(nemesis.run(faults), *(c.run(KEYS, deadline) for c in clients))
    return faults


async def _final_reads(cluster: Cluster, history: History) -> dict[str, dict[str, str | None]]:
    """Every key read (linearizably, recorded) on every node: node -> key -> value.

    A node that just came back may still be catching up: a read is retried (each
    attempt is in the history) until one succeeds or FINAL_READ_SECONDS pass.
    """
    values: dict[str, dict[str, str | None]] = {}
    rng = random.Random(0)
    deadline = time.monotonic() + FINAL_READ_SECONDS
    for i, node in enumerate(cluster.nodes.values()):
        async with Client(1000 + i, NODES, node.id, node.app, history=history, rng=rng) as reader:
            for key in KEYS:
                op, _ = await reader.get(key)
                while op.status != OK and time.monotonic() < deadline:
                    await asyncio.sleep(0.1)  # pacing retries, not synchronisation
                    op, _ = await reader.get(key)
                assert op.status == OK and op.output is not None, f"final read on {node.id}: {op}"
                values.setdefault(node.id, {})[key] = op.output["value"]
    return values


def _replicas_agree(cluster: Cluster) -> list[dict[str, Any]]:
    """Once every node applied the same index, their whole stores are equal."""

    def converged() -> int | None:
        views = [n.status() for n in cluster.nodes.values()]
        applied = {v["applied_index"] for v in views}
        commits = {v["commit_index"] for v in views}
        return applied.pop() if len(applied) == 1 and applied == commits else None

    poll(converged, 20, "every node to apply the same index", interval=0.1)
    stores = [
        http("GET", n.app + "/v1/kv?prefix=&consistency=stale").json()["items"]
        for n in cluster.nodes.values()
    ]
    for store in stores[1:]:
        assert store == stores[0], "replicas differ after converging"
    items: list[dict[str, Any]] = stores[0]
    return items


@pytest.mark.slow
@pytest.mark.timeout(200)
async def test_history_is_linearizable_under_faults(
    tmp_path: Path, porcupine: Path, proxied: Proxied
) -> None:
    cluster = proxied.cluster
    rng = random.Random(SEED)
    nemesis = Nemesis(proxied.targets, proxied.network, list(cluster.nodes), rng_from(rng))
    history = History()
    path = tmp_path / "history.json"
    try:
        planned = await _workload(cluster, nemesis, history, rng)
        await asyncio.to_thread(cluster.leader, LEADER_TIMEOUT)
        finals = await _final_reads(cluster, history)
        items = await asyncio.to_thread(_replicas_agree, cluster)
    except BaseException:
        print(cluster.dump_logs())
        raise
    finally:
        history.nemesis = nemesis.events
        history.write(path)

    counts = history.counts()
    faults = [e for e in nemesis.events if e["event"] == "start"]
    print(f"seed={SEED} faults={len(faults)} ops={counts} history={path}")
    result = check(porcupine, path, tmp_path / "linearizability.html", timeout=60)
    assert result.verdict == "ok", f"{result} history={path} logs={cluster.root}"

    # The test has teeth: every planned fault happened, and enough writes were acknowledged.
    assert len(faults) == len(planned) > 0
    writes_ok = [op for op in history.ops if op.op != "get" and op.status == OK]
    assert len(writes_ok) >= 50, counts
    # Every node answers the same final value, one that a write (not a failed one) wrote.
    assert all(v == finals["n1"] for v in finals.values()), finals
    written = {op.value or op.new for op in history.ops if op.op != "get" and op.status != FAIL}
    for key, value in finals["n1"].items():
        assert value is None or value in written, (key, value)
    stored = {item["key"]: base64.b64decode(item["value_b64"]).decode() for item in items}
    assert stored == {k: v for k, v in finals["n1"].items() if v is not None}


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_stale_reads_from_an_isolated_follower_are_caught(
    tmp_path: Path, porcupine: Path, proxied: Proxied
) -> None:
    """The whole pipeline can fail: a follower cut off by the proxy serves a stale read
    (asked for with ``consistency=stale``), and porcupine-check calls the history illegal.
    The linearizable read on the same node must refuse instead (503)."""
    cluster, network = proxied.cluster, proxied.network
    leader = await asyncio.to_thread(cluster.leader, LEADER_TIMEOUT)
    follower = cluster.followers(leader)[0]
    history = History()
    rng = random.Random(0)
    async with contextlib.AsyncExitStack() as stack:
        writer = await stack.enter_async_context(
            Client(0, 3, leader.id, leader.app, history=history, rng=rng)
        )
        stale = await stack.enter_async_context(
            Client(1, 3, follower.id, follower.app, history=history, rng=rng, consistency="stale")
        )
        strict = await stack.enter_async_context(
            Client(2, 3, follower.id, follower.app, history=history, rng=rng)
        )
        first = await writer.put("k")
        commit = (await asyncio.to_thread(leader.status))["commit_index"]
        await asyncio.to_thread(
            poll, lambda: follower.status()["applied_index"] >= commit, 10, "the follower"
        )
        isolate = Fault(Kind.ISOLATE, follower.id, hold=0, quiet=0)
        network.cut(links_for(isolate, follower.id, list(cluster.nodes), rng))
        second = await writer.put("k")
        deadline = time.monotonic() + 15  # a leader change under load: the majority elects
        while second.status != OK and time.monotonic() < deadline:
            await asyncio.sleep(0.1)  # pacing retries, not synchronisation
            second = await writer.put("k")
        read, _ = await stale.get("k")
        refused, _ = await strict.get("k")
        network.heal()
    path = history.write(tmp_path / "history.json")
    assert (first.status, second.status, read.status) == (OK, OK, OK), history.ops
    assert read.output == {"value": first.value}
    assert refused.status == FAIL and refused.error == "503", refused
    result = check(porcupine, path, tmp_path / "linearizability.html")
    assert result.verdict == "illegal", result
    assert (tmp_path / "linearizability.html").is_file()


def rng_from(rng: random.Random) -> random.Random:
    """A child RNG: its own stream, fixed by the parent's seed."""
    return random.Random(rng.random())
