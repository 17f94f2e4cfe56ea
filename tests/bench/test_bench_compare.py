"""``raftpod-bench compare --quick`` end to end: both systems run and the JSON adds up.

This proves the benchmark works (real etcd, real raftpod nodes, real load
generator processes), in the mode the benchmark issue asks CI to run; it
asserts no timings, only that every figure of the preset was measured.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from raftpod_sidecar.bench.compare import EtcdNotFoundError, find_etcd, node_args
from raftpod_sidecar.bench.workloads import PRESETS

QUICK = PRESETS["quick"]
QUICK_TIMEOUT_S = 420  # ~75 s on an idle 2-core machine


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
    if row["members"] == "all":
        assert row["member"] is None, where
    else:
        assert row["member"] in [n["name"] for n in row["server"]["nodes"]], where


@pytest.mark.slow
@pytest.mark.timeout(QUICK_TIMEOUT_S + 30)
def test_compare_quick_measures_both_systems(tmp_path: Path) -> None:
    etcd = _etcd_or_skip()
    out = tmp_path / "results"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "raftpod_sidecar.bench.cli",
            "compare",
            "--quick",
            "--out",
            str(out),
            "--etcd",
            str(etcd),
        ],
        capture_output=True,
        text=True,
        timeout=QUICK_TIMEOUT_S,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    doc = json.loads((out / "latest.json").read_text())
    assert doc["preset"] == "quick"
    expected = [w.name for w in QUICK.workloads]
    assert doc["machine"]["nproc"] >= 1
    assert set(doc["systems"]) == {"raftpod", "etcd"}
    for system, result in doc["systems"].items():
        assert "error" not in result, result
        names = [w["name"] for w in result["workloads"]]
        assert names == expected
        for row in result["workloads"]:
            _check_workload(system, row)
        assert result["prefill"]["ops"] == 1000, system
        assert all(mib > 0 for mib in result["idle_rss_mib"].values()), system
        for kind, trials in (
            ("failover", QUICK.failover_trials),
            ("transfer", QUICK.transfer_trials),
        ):
            assert len(result[kind]["trials_s"]) + result[kind]["failed"] == trials, (system, kind)
        catchup = result["catchup"]
        assert "error" not in catchup, (system, catchup)
        entries = QUICK.catchup_entries
        assert catchup["entries"] + sum(catchup["errors"].values()) == entries, system
        assert catchup["target_index"] >= catchup["entries"], system
    snapshot = doc["systems"]["raftpod"]["snapshot_install"]
    assert snapshot["values"] == QUICK.snapshot_keys
    assert snapshot["snapshot_bytes"] > QUICK.snapshot_keys * 4096
    assert isinstance(snapshot["elections_during_snapshot"], int)
    assert snapshot["seconds"] is not None, "the blank member never caught up"
    assert "snapshot_install" not in doc["systems"]["etcd"]
    rows = {row["workload"]: row for row in doc["comparison"]}
    assert set(rows) == set(expected)
    assert all(row["ops x"] > 0 for row in rows.values())
    assert "write-seq-follower" in proc.stdout  # the terminal table
    seq = {w["name"]: w for w in doc["systems"]["raftpod"]["workloads"]}
    to_leader, via_follower = seq["write-seq-leader"], seq["write-seq-follower"]
    assert (to_leader["members"], via_follower["members"]) == ("leader", "follower")
    assert to_leader["member"] != via_follower["member"]
    # a lone writer's leader does the most work (it sends to both followers and
    # answers the client): the row went where it says
    busiest = max(to_leader["server"]["nodes"], key=lambda n: n["cpu_cores"])
    assert busiest["name"] == to_leader["member"]


def test_a_named_etcd_that_is_not_there_is_refused_not_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = str(tmp_path / "no-etcd")
    with pytest.raises(EtcdNotFoundError, match=f"--etcd {missing}: not an executable file"):
        find_etcd(missing)
    monkeypatch.setenv("RAFTPOD_ETCD", missing)
    with pytest.raises(EtcdNotFoundError, match=f"RAFTPOD_ETCD {missing}: not an executable"):
        find_etcd()


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("--bogus", "not flags a raftpod node takes"),
        ("--event-loop", "not flags a raftpod node takes"),
        ("--heartbeat-ms 'x", "No closing quotation"),
        ("--election-timeout-ms 300:150", "--election-timeout-ms"),
    ],
)
def test_raftpod_args_a_node_would_refuse_stop_the_run_before_it_starts(
    text: str, says: str
) -> None:
    with pytest.raises(SystemExit) as refused:
        node_args(text)
    message = str(refused.value.code)
    assert message.startswith("raftpod-bench compare: --raftpod-args"), message
    assert says in message


def test_raftpod_args_nodes_take_pass_through_as_argv() -> None:
    assert node_args("--event-loop asyncio --heartbeat-ms 40") == [
        "--event-loop", "asyncio", "--heartbeat-ms", "40",
    ]  # fmt: skip
    assert node_args("") == []
