"""The load generator's arithmetic and its bounds, against a small real HTTP server."""

from __future__ import annotations

import random

from aiohttp import web

from raftpod_sidecar.bench.histogram import LatencyHistogram
from raftpod_sidecar.bench.loadgen import LoadJob, LoadResult, merge, run_job, split
from raftpod_sidecar.bench.targets import EtcdTarget, RaftpodTarget


def test_histogram_percentiles_are_within_one_percent() -> None:
    rng = random.Random(3)
    samples = sorted(rng.uniform(0.0001, 0.5) for _ in range(10_000))
    hist = LatencyHistogram()
    for s in samples:
        hist.record(s)
    for q in (0.5, 0.99, 0.999):
        exact = samples[int(q * len(samples)) - 1]
        measured = hist.percentile(q)
        assert measured is not None
        assert abs(measured - exact) / exact < 0.011, q


def test_histogram_survives_json_and_merges() -> None:
    a, b = LatencyHistogram(), LatencyHistogram()
    for _ in range(3):
        a.record(0.001)
    b.record(1.0)
    a.merge(LatencyHistogram.from_json(b.to_json()))
    assert a.total == 4
    low, high = a.percentile(0.75), a.percentile(1.0)
    assert low is not None and 0.00099 < low < 0.00101
    assert high is not None and 0.99 < high < 1.01
    assert LatencyHistogram().percentile(0.5) is None


def test_split_shares_clients_and_budget_exactly() -> None:
    job = LoadJob("etcd", ("http://127.0.0.1:1",), "write", clients=7, duration_s=1, max_ops=101)
    parts = split(job, 2)
    assert [p.clients for p in parts] == [4, 3]
    assert [p.client_offset for p in parts] == [0, 4]
    assert sum(p.max_ops for p in parts) == 101
    assert len(split(job, 10)) == 7  # never more processes than clients


def test_merge_adds_counts_and_keeps_the_longest_run() -> None:
    one = LoadResult(ops=10, elapsed_s=2.0, cpu_s=0.5, max_process_cpu=0.3)
    one.errors["timeout"] = 1
    two = LoadResult(ops=5, elapsed_s=3.0, cpu_s=0.25, max_process_cpu=0.6)
    two.errors["timeout"] = 2
    merged = merge([one, two])
    assert (merged.ops, merged.elapsed_s, merged.cpu_s, merged.processes) == (15, 3.0, 0.75, 2)
    assert merged.errors == {"timeout": 3}
    assert merged.max_process_cpu == 0.6


def test_targets_spell_requests() -> None:
    put = EtcdTarget().put("http://h", "k", b"v")
    assert (put.method, put.url, put.body) == (
        "POST",
        "http://h/v3/kv/put",
        b'{"key": "aw==", "value": "dg=="}',
    )
    get = EtcdTarget().get("http://h", "k", "serializable")
    assert b'"serializable": true' in get.body
    assert RaftpodTarget().get("http://h", "k", "lease").url == "http://h/v1/kv/k?consistency=lease"
    assert RaftpodTarget().read_ok(404) and not EtcdTarget().read_ok(404)


async def test_run_job_stops_at_max_ops_and_counts_errors() -> None:
    seen: list[str] = []

    async def put(request: web.Request) -> web.Response:
        key = request.match_info["key"]
        seen.append(key)
        # every third request fails, as an overloaded server would answer
        return web.Response(status=503 if len(seen) % 3 == 0 else 200)

    app = web.Application()
    app.router.add_put("/v1/kv/{key:.*}", put)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    try:
        job = LoadJob(
            "raftpod",
            (f"http://127.0.0.1:{port}",),
            "write",
            clients=4,
            duration_s=30.0,
            max_ops=30,
            keys=10,
            key_order="sequential",
        )
        result = await run_job(job)
    finally:
        await runner.cleanup()
    assert len(seen) == 30
    assert result.ops == 20
    assert result.errors == {"http_503": 10}
    assert result.latency.total == 20
    assert sorted(set(seen)) == [f"bench/k{i:06d}" for i in range(10)]
