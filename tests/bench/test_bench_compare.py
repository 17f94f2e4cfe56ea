"""``raftpod-bench compare --smoke`` end to end: both systems run and the JSON adds up.

This proves the benchmark works (real etcd, real raftpod nodes, real load
generator processes); it asserts no timings, only that figures were measured.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from raftpod_sidecar.bench.compare import EtcdNotFoundError, find_etcd

SMOKE_TIMEOUT_S = 240


def _etcd_or_skip() -> Path:
    try:
        return find_etcd()
    except EtcdNotFoundError as exc:
        if os.environ.get("RAFTPOD_REQUIRE_KUBE", "") not in ("", "0"):
            pytest.fail(f"RAFTPOD_REQUIRE_KUBE is set but {exc}", pytrace=False)
        pytest.skip(str(exc))


def _check_workload(system: str, row: dict[str, Any]) -> None:
    where = f"{system} {row['name']}"
    assert row["ops"] > 0, where
    assert row["ops_per_s"] > 0, where
    lat = row["latency_ms"]
    assert 0 < lat["p50"] <= lat["p99"] <= lat["p999"], where
    assert row["error_count"] == sum(row["errors"].values()), where
    assert row["generator"]["processes"] >= 1, where
    assert row["generator"]["cpu_s"] > 0, where
    assert [n["name"] for n in row["server"]["nodes"]] == (
        ["n1", "n2", "n3"] if system == "raftpod" else ["e1", "e2", "e3"]
    ), where
    assert all(n["rss_max_mib"] > 0 for n in row["server"]["nodes"]), where
    assert row["server"]["cpu_cores"] > 0, where


@pytest.mark.slow
@pytest.mark.timeout(SMOKE_TIMEOUT_S + 30)
def test_compare_smoke_measures_both_systems(tmp_path: Path) -> None:
    etcd = _etcd_or_skip()
    out = tmp_path / "results"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "raftpod_sidecar.bench.cli",
            "compare",
            "--smoke",
            "--out",
            str(out),
            "--etcd",
            str(etcd),
        ],
        capture_output=True,
        text=True,
        timeout=SMOKE_TIMEOUT_S,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    doc = json.loads((out / "latest.json").read_text())
    assert doc["preset"] == "smoke"
    assert doc["machine"]["nproc"] >= 1
    assert set(doc["systems"]) == {"raftpod", "etcd"}
    for system, result in doc["systems"].items():
        assert "error" not in result, result
        names = [w["name"] for w in result["workloads"]]
        assert names == ["write-seq", "write-16", "read-linearizable-16", "read-lease-16"]
        for row in result["workloads"]:
            _check_workload(system, row)
        assert result["prefill"]["ops"] == 1000, system
        assert all(mib > 0 for mib in result["idle_rss_mib"].values()), system
        for kind in ("failover", "transfer"):
            assert len(result[kind]["trials_s"]) + result[kind]["failed"] == 1, (system, kind)
        catchup = result["catchup"]
        assert catchup["entries"] + sum(catchup["errors"].values()) == 200, system
        assert catchup["target_index"] >= catchup["entries"], system
    snapshot = doc["systems"]["raftpod"]["snapshot_install"]
    assert snapshot["values"] == 200
    assert snapshot["snapshot_bytes"] > 200 * 4096
    assert snapshot["seconds"] is not None, "the blank member never caught up"
    assert "snapshot_install" not in doc["systems"]["etcd"]
    rows = {row["workload"]: row for row in doc["comparison"]}
    assert set(rows) == {"write-seq", "write-16", "read-linearizable-16", "read-lease-16"}
    assert all(row["ops x"] > 0 for row in rows.values())
    assert "write-seq" in proc.stdout  # the terminal table
