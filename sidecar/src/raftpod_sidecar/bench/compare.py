"""``raftpod-bench compare``: raftpod and etcd, one after the other, under the same load.

Each system gets a fresh 3-node cluster in a temporary directory, the prefill,
the preset's workloads, leadership transfers, kill -9 failovers and a
follower's restart-to-caught-up after missing N writes; then the
cluster is stopped and the next one starts, so they never share the machine.
The results go to ``--out`` (default ``bench/results``) as JSON and a chart;
the terminal shows the raftpod/etcd table and the goals of the benchmark issue.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .. import config as config_mod
from ..devcluster import node_commands
from .clusters import (
    HTTP_ERRORS,
    Cluster,
    ClusterError,
    EtcdCluster,
    RaftpodCluster,
    rss_bytes,
)
from .failover import (
    measure_catchup,
    measure_failover,
    measure_snapshot_install,
    measure_transfer,
)
from .loadgen import GeneratorError
from .profiling import ProfilerMissingError, find_py_spy
from .report import (
    SCHEMA_VERSION,
    comparison_rows,
    goals,
    machine_description,
    timing_rows,
    write_results,
)
from .targets import SYSTEMS
from .workloads import PRESETS, Preset, prefill, run_workload

DEFAULT_OUT = "bench/results"
REPO_ROOT = Path(__file__).resolve().parents[4]


class EtcdNotFoundError(RuntimeError):
    """No etcd binary: the message says how to get one."""


def find_etcd(explicit: str | None = None) -> Path:
    """The etcd binary: ``explicit``, ``$RAFTPOD_ETCD``, ``scripts/testbin path etcd``, PATH.

    A path the user named (flag or variable) is used or refused, never passed over
    for another etcd."""
    for source, named in (("--etcd", explicit), ("RAFTPOD_ETCD", os.environ.get("RAFTPOD_ETCD"))):
        if named:
            if not _executable(named):
                raise EtcdNotFoundError(f"{source} {named}: not an executable file")
            return Path(named)
    candidates: list[str | None] = []
    testbin = REPO_ROOT / "scripts" / "testbin"
    if testbin.exists():
        try:
            out = subprocess.run(
                ["bash", str(testbin), "path", "etcd"],
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            out = ""
        candidates.append(out or None)
    candidates.append(shutil.which("etcd"))
    for candidate in candidates:
        if candidate and _executable(candidate):
            return Path(candidate)
    raise EtcdNotFoundError(
        "no etcd binary found: build it with `scripts/testbin build etcd`, or pass --etcd PATH"
        " or set RAFTPOD_ETCD"
    )


def _executable(path: str) -> bool:
    return Path(path).is_file() and os.access(path, os.X_OK)


def node_args(text: str) -> list[str]:
    """``--raftpod-args`` as argv, refused before anything starts if a node would refuse it."""
    try:
        extra = shlex.split(text)
    except ValueError as exc:
        raise SystemExit(f"raftpod-bench compare: --raftpod-args {text!r}: {exc}") from None
    command = node_commands(1, Path("data"), 7000, "127.0.0.1", extra)[0]
    try:
        config_mod.parse(command[command.index("--id") :])
    except config_mod.ConfigError as exc:
        raise SystemExit(f"raftpod-bench compare: --raftpod-args: {exc}") from None
    except SystemExit:  # argparse printed what it did not take
        raise SystemExit(
            f"raftpod-bench compare: --raftpod-args {text!r}: not flags a raftpod node takes"
        ) from None
    return extra


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _rss_mib(cluster: Cluster) -> dict[str, float]:
    return {name: round(rss_bytes(pid) / 2**20, 1) for name, pid in cluster.pids().items()}


def run_system(cluster: Cluster, preset: Preset, profile_dir: Path | None = None) -> dict[str, Any]:
    """Start ``cluster``, run the preset against it, stop it; every figure as JSON."""
    with cluster:
        started = time.monotonic()
        cluster.start()
        doc: dict[str, Any] = {"startup_s": round(time.monotonic() - started, 3)}
        doc["idle_rss_mib"] = _rss_mib(cluster)
        _progress(f"{cluster.system}: ready in {doc['startup_s']}s, RSS {doc['idle_rss_mib']}")
        keys = max(w.keys for w in preset.workloads)
        filled = prefill(cluster, keys, value_bytes=100)
        doc["prefill"] = {"ops": filled.ops, "errors": dict(filled.errors)}
        doc["workloads"] = []
        for workload in preset.workloads:
            row = run_workload(cluster, workload, preset, profile_dir)
            doc["workloads"].append(row)
            lat = row["latency_ms"]
            _progress(
                f"{cluster.system} {row['name']}: {row['ops_per_s']:,.0f} ops/s"
                f" p50 {lat['p50']} ms p99 {lat['p99']} ms errors {row['error_count']}"
                f" server cpu {row['server']['cpu_cores']} loadgen cpu"
                f" {row['generator']['max_process_cpu']}x{row['generator']['processes']}"
                f" other cpu {row['other_cpu_cores']}"
            )
        doc["idle_rss_after_mib"] = _rss_mib(cluster)
        measurements: list[tuple[str, Callable[[], dict[str, Any]]]] = [
            ("transfer", lambda: measure_transfer(cluster, preset.transfer_trials)),
            ("failover", lambda: measure_failover(cluster, preset.failover_trials)),
            ("catchup", lambda: measure_catchup(cluster, preset.catchup_entries)),
        ]
        if isinstance(cluster, RaftpodCluster) and preset.snapshot_keys:
            raftpod = cluster
            measurements.append(
                (
                    "snapshot_install",
                    lambda: measure_snapshot_install(raftpod, preset.snapshot_keys),
                )
            )
        for name, measure in measurements:
            # One failed measurement is recorded as such and keeps the others.
            try:
                doc[name] = measure()
            except (*HTTP_ERRORS, ClusterError) as exc:
                doc[name] = {"error": f"{type(exc).__name__}: {exc}"}
            _progress(f"{cluster.system} {name}: {doc[name]}")
    return doc


def run_compare(
    preset: Preset,
    out_dir: Path,
    systems: list[str],
    etcd_binary: Path | None,
    *,
    raftpod_args: Sequence[str] = (),
    profile_dir: Path | None = None,
) -> dict[str, Any]:
    """Run every system in ``systems``, write the results, and return the document.

    ``raftpod_args`` go to every raftpod node (e.g. ``--event-loop asyncio``); with
    ``profile_dir``, py-spy flame graphs of the raftpod nodes per workload go there."""
    now = dt.datetime.now(dt.UTC)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    workdir = Path(tempfile.mkdtemp(prefix="raftpod-bench-"))
    doc: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "started_at": now.isoformat(timespec="seconds"),
        "preset": preset.name,
        "machine": machine_description(workdir, etcd_binary),
        "systems": {},
    }
    failed = False
    try:
        for system in systems:
            cluster: Cluster
            if system == "etcd":
                assert etcd_binary is not None
                cluster = EtcdCluster(etcd_binary, workdir)
            else:
                cluster = RaftpodCluster(workdir, extra_args=raftpod_args)
            try:
                result = doc["systems"][system] = run_system(cluster, preset, profile_dir)
                # a failed measurement keeps the logs too, so it can be diagnosed
                failed |= any(isinstance(v, dict) and "error" in v for v in result.values())
                if system == "raftpod":
                    doc["systems"][system]["node_args"] = list(raftpod_args)
            except (ClusterError, GeneratorError, OSError) as exc:
                failed = True
                doc["systems"][system] = {"error": str(exc)}
                _progress(f"{system}: failed: {exc}")
    finally:
        if failed:
            _progress(f"server logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    doc["finished_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    doc["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    doc["comparison"] = comparison_rows(doc)
    doc["timings"] = timing_rows(doc)
    doc["goals"] = goals(doc)
    complete = not any("error" in d for d in doc["systems"].values())
    for path in write_results(doc, out_dir, stamp, latest=complete):
        _progress(f"wrote {path}")
    if not complete:
        _progress(f"left {out_dir}/latest.* as they were: a system failed")
    return doc


def add_compare_parser(commands: Any) -> None:
    """Register ``compare`` on the ``raftpod-bench`` subcommand parsers."""
    compare = commands.add_parser(
        "compare", help="raftpod vs etcd: 3-node clusters, same load generator, same machine"
    )
    speed = compare.add_mutually_exclusive_group()
    speed.add_argument("--quick", action="store_true", help="fewer, shorter runs (< 2 minutes)")
    speed.add_argument("--smoke", action="store_true", help="proves it works (< 1 minute)")
    compare.add_argument("--out", default=DEFAULT_OUT, help=f"results folder ({DEFAULT_OUT})")
    compare.add_argument(
        "--systems", default=",".join(SYSTEMS), help="comma-separated: raftpod,etcd"
    )
    compare.add_argument(
        "--etcd", default=None, help="etcd binary ($RAFTPOD_ETCD, scripts/testbin, PATH)"
    )
    compare.add_argument(
        "--raftpod-args",
        default="",
        help="extra flags for every raftpod node, as one string (e.g. '--event-loop asyncio')",
    )
    compare.add_argument(
        "--profile",
        metavar="DIR",
        default=None,
        help="py-spy flame graphs of every raftpod node per workload into DIR (needs py-spy)",
    )
    compare.set_defaults(run=compare_command, json=None)


def _writable_dir(flag: str, text: str) -> Path:
    """``text`` as a folder that exists and takes files, made now: a bad path stops the run
    before it starts, not after its results are in."""
    path = Path(text)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SystemExit(f"raftpod-bench compare: {flag} {text}: {exc.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise SystemExit(f"raftpod-bench compare: {flag} {text}: not writable")
    return path


def compare_command(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The ``compare`` subcommand; returns the raftpod/etcd table rows."""
    preset = PRESETS["smoke" if args.smoke else "quick" if args.quick else "full"]
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = sorted(set(systems) - set(SYSTEMS))
    if unknown or not systems:
        raise SystemExit(f"raftpod-bench compare: --systems takes {', '.join(SYSTEMS)}")
    out_dir = _writable_dir("--out", args.out)
    profile_dir = _writable_dir("--profile", args.profile) if args.profile else None
    try:
        etcd = find_etcd(args.etcd) if "etcd" in systems else None
        if args.profile:
            find_py_spy()
    except (EtcdNotFoundError, ProfilerMissingError) as exc:
        raise SystemExit(f"raftpod-bench compare: {exc}") from None
    raftpod_args = node_args(args.raftpod_args)
    doc = run_compare(
        preset,
        out_dir,
        systems,
        etcd,
        raftpod_args=raftpod_args,
        profile_dir=profile_dir,
    )
    for timing in doc["timings"]:
        _progress(
            f"{timing['timing']}: raftpod {timing['raftpod ms']} ms, etcd {timing['etcd ms']} ms"
            f" (x {timing['x']})"
        )
    for goal in doc["goals"]:
        verdict = {True: "met", False: "NOT met", None: "not measured"}[goal["met"]]
        _progress(f"goal: {goal['goal']} {goal['target']}: {goal['measured']} ({verdict})")
    errors = [s for s, d in doc["systems"].items() if "error" in d]
    if errors:
        raise SystemExit(f"raftpod-bench compare: {', '.join(errors)} failed; see above")
    return [{k: "-" if v is None else v for k, v in row.items()} for row in doc["comparison"]]
