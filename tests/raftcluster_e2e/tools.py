"""kubectl and helm as users run them: the binaries scripts/testbin built, as subprocesses.

A missing binary skips the test (or fails it when RAFTPOD_REQUIRE_KUBE is set,
as in CI), the same rule the kube fixtures follow.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.kube.binaries import binary
from tests.kube.env import skip_or_fail

TOOL_TIMEOUT = 60.0


def tool(name: str) -> Path:
    """The path of `name` (kubectl or helm); skip or fail when it was not built."""
    path = binary(name)
    if not os.access(path, os.X_OK):
        skip_or_fail(f"{name} not built (scripts/testbin build): {path}")
    return path


def run_tool(
    name: str,
    *args: str,
    kubeconfig: Path | None = None,
    stdin: str | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run kubectl/helm with `args`; with `check`, a non-zero exit fails with its output."""
    env = {**os.environ}
    if kubeconfig is not None:
        env["KUBECONFIG"] = str(kubeconfig)
    done = subprocess.run(
        [str(tool(name)), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT,
        env=env,
        check=False,
    )
    if check and done.returncode != 0:
        pytest.fail(
            f"{name} {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}",
            pytrace=False,
        )
    return done
