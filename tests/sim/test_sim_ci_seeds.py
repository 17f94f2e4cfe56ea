"""The CI safety run: 2,000 mixed-fault seeds on 2 worker processes, zero violations."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_two_thousand_mixed_fault_seeds() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "raftpod_sidecar.sim.cli",
            "--seeds",
            "0..1999",
            "--jobs",
            "2",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=880,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-20_000:] + done.stderr[-5_000:]
    assert "runs=2000 failed=0" in done.stdout
