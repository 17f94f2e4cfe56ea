"""Same seed, same run: byte-identical traces, in one process and across processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from raftpod_sidecar.sim.options import SimOptions
from raftpod_sidecar.sim.runner import run

OPTIONS = SimOptions(seed=11, nodes=3, steps=800)


def test_two_runs_of_a_seed_give_identical_traces() -> None:
    first, second = run(OPTIONS, trace=True), run(OPTIONS, trace=True)
    assert first.ok, first.failure
    assert len(first.trace) > 500
    assert first.trace == second.trace
    assert first.summary == second.summary


def test_another_seed_gives_another_run() -> None:
    assert run(OPTIONS, trace=True).trace != run(OPTIONS._replace(seed=12), trace=True).trace


def test_tracing_does_not_change_the_run() -> None:
    assert run(OPTIONS).summary == run(OPTIONS, trace=True).summary


def test_traces_match_across_processes_and_hash_seeds(tmp_path: Path) -> None:
    """String hashing differs per process; nothing may depend on set or hash order."""
    traces = []
    for hash_seed in ("1", "2"):
        out = tmp_path / f"trace-{hash_seed}.txt"
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        subprocess.run(
            [
                sys.executable,
                "-m",
                "raftpod_sidecar.sim.cli",
                "--seed",
                "11",
                "--steps",
                "800",
                "--trace",
                str(out),
                "--quiet",
            ],
            check=True,
            env=env,
            timeout=120,
            capture_output=True,
        )
        traces.append(out.read_bytes())
    assert traces[0] == traces[1]
    assert traces[0].count(b"\n") > 500
