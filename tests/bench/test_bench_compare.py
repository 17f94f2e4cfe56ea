"""``raftpod-bench compare --quick`` end to end: both systems run and the JSON adds up.

This proves the benchmark works (real etcd, real raftpod nodes, real load
generator processes), in the mode the benchmark issue asks CI to run; it
asserts no timings, only that every figure of the preset was measured.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from raftpod_sidecar.bench import cli
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


@pytest.mark.parametrize("flag", ["--out", "--profile"])
def test_a_folder_it_cannot_use_stops_the_run_before_it_starts(
    tmp_path: Path, flag: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where a run puts its clusters
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(SystemExit) as refused:
        cli.main(["compare", "--smoke", "--systems", "raftpod", flag, str(blocker / "results")])
    assert str(refused.value.code) == (
        f"raftpod-bench compare: {flag} {blocker / 'results'}: Not a directory"
    )
    assert list(tmp_path.iterdir()) == [blocker], "it began a run before checking"


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if text.encode() in cmdline:
            found.append(int(proc.name))
    return found


def test_sigterm_stops_the_clusters_it_started(tmp_path: Path) -> None:
    """Nodes run in sessions of their own; SIGTERM must not leave them running."""
    env = {**os.environ, "TMPDIR": str(tmp_path)}  # the cluster's data dirs, in its args
    bench = subprocess.Popen(
        [sys.executable, "-m", "raftpod_sidecar.bench.cli", "compare", "--smoke",
         "--systems", "raftpod", "--out", str(tmp_path / "results")],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while len(_processes_mentioning(f"{tmp_path}/raftpod-bench-")) < 3:
            assert bench.poll() is None, bench.communicate()[1].decode()[-2000:]
            assert time.monotonic() < deadline, "the cluster never started"
            time.sleep(0.05)
        bench.send_signal(signal.SIGTERM)
        code = bench.wait(timeout=30)
        deadline = time.monotonic() + 10
        while _processes_mentioning(f"{tmp_path}/raftpod-bench-"):
            assert time.monotonic() < deadline, "nodes outlived raftpod-bench"
            time.sleep(0.05)
        assert code == 128 + signal.SIGTERM  # the shell's convention for a SIGTERM exit
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.wait()
        for pid in _processes_mentioning(f"{tmp_path}/raftpod-bench-"):
            os.kill(pid, signal.SIGKILL)
