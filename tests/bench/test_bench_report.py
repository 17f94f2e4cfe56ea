"""The comparison table and the goal verdicts computed from a results document."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from raftpod_sidecar.bench.report import comparison_rows, goals, timing_rows, write_results


def _workload(name: str, ops_per_s: float, p50: float, p99: float) -> dict[str, Any]:
    return {
        "name": name,
        "op": "write",
        "ops_per_s": ops_per_s,
        "latency_ms": {"p50": p50, "p99": p99, "p999": p99},
        "error_count": 0,
        "server": {"cpu_cores": 0.5},
    }


def _doc() -> dict[str, Any]:
    return {
        "systems": {
            "raftpod": {
                "workloads": [
                    _workload("write-seq-leader", 900.0, 0.6, 2.0),
                    _workload("write-seq-follower", 700.0, 0.9, 2.0),
                    _workload("write-64", 3000.0, 20.0, 60.0),
                ],
                "failover": {"median_s": 0.4},
                "transfer": {"median_s": 0.2},
                "idle_rss_mib": {"n1": 40.0, "n2": 120.0},
            },
            "etcd": {
                "workloads": [
                    _workload("write-seq-leader", 600.0, 1.0, 2.0),
                    _workload("write-seq-follower", 550.0, 1.2, 2.0),
                    _workload("write-64", 2500.0, 25.0, 50.0),
                ],
                "failover": {"median_s": 1.6},
                "transfer": {"median_s": 0.1},
            },
        }
    }


def test_rows_carry_ratios_raftpod_over_etcd() -> None:
    rows = {row["workload"]: row for row in comparison_rows(_doc())}
    assert rows["write-seq-leader"]["ops x"] == 1.5
    assert rows["write-seq-leader"]["p50 x"] == 0.6
    assert rows["write-64"]["p99 x"] == 1.2
    timings = {row["timing"]: row for row in timing_rows(_doc())}
    assert timings["failover median"]["x"] == 0.25
    assert timings["catchup seconds"]["raftpod ms"] is None


def test_goals_are_judged_and_unmeasured_ones_say_so() -> None:
    verdicts = {g["goal"]: g["met"] for g in goals(_doc())}
    assert verdicts["sequential write p50 to the leader, raftpod/etcd"] is True  # 0.6 <= 0.7
    assert verdicts["sequential write p50 through a follower, raftpod/etcd"] is False  # 0.75
    assert verdicts["writes/s at 64 clients, raftpod/etcd"] is False  # 1.2 < 1.5
    assert verdicts["write p99 at 64 clients, raftpod/etcd"] is False  # 1.2 > 1.0
    assert verdicts["linearizable reads/s at 64 clients, raftpod/etcd"] is None
    assert verdicts["failover median, s"] is True
    assert verdicts["leadership transfer median, s"] is False  # 0.2 s
    assert verdicts["idle RSS per node, MiB"] is False  # the worst node counts


def test_a_ratio_just_below_the_goal_does_not_round_up_to_it() -> None:
    doc = _doc()
    doc["systems"]["raftpod"]["workloads"].append(_workload("read-linearizable-64", 6097.6, 9, 20))
    doc["systems"]["etcd"]["workloads"].append(_workload("read-linearizable-64", 4075.0, 14, 34))
    (lin,) = [g for g in goals(doc) if g["goal"].startswith("linearizable")]
    assert lin["measured"] == 1.496  # 1.50 in the table, which rounds to 2 decimals
    assert lin["met"] is False


def test_a_run_with_a_failed_system_leaves_latest_as_it_was(tmp_path: Path) -> None:
    good = {"systems": {"raftpod": {"workloads": []}}, "run": "good"}
    written = write_results(good, tmp_path, "20260101T000000Z", latest=True)
    assert tmp_path / "latest.json" in written
    failed = {"systems": {"raftpod": {"error": "n2 exited with 2"}}, "run": "failed"}
    written = write_results(failed, tmp_path, "20260101T000100Z", latest=False)
    assert all(path.name.startswith("20260101T000100Z") for path in written)
    assert json.loads((tmp_path / "latest.json").read_text())["run"] == "good"
    assert json.loads((tmp_path / "20260101T000100Z.json").read_text())["run"] == "failed"
    if (tmp_path / "latest.png").exists():  # matplotlib installed: the chart follows the data
        chart = (tmp_path / "20260101T000000Z.png").read_bytes()
        assert (tmp_path / "latest.png").read_bytes() == chart
