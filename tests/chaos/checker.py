"""Running ``porcupine-check`` (tools/porcupine) on a history file.

``scripts/testbin build`` builds the binary once outside the repo; tests find
it through ``RAFTPOD_PORCUPINE`` or the testbin cache, and skip (fail in CI)
when it is missing.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.kube import binaries
from tests.kube.env import skip_or_fail


def porcupine_binary() -> Path:
    """The built checker; skips, or fails under RAFTPOD_REQUIRE_KUBE, when it is absent."""
    path = binaries.binary("porcupine-check")
    if not os.access(path, os.X_OK):
        skip_or_fail(f"porcupine-check not built (scripts/testbin build porcupine): {path}")
    return path


@dataclass(frozen=True)
class Verdict:
    verdict: str  # ok | illegal | unknown | "" (bad input)
    returncode: int
    stderr: str


def check(binary: Path, history: Path, out: Path | None = None, timeout: float = 60.0) -> Verdict:
    """The checker's one-line verdict; its own --timeout is ``timeout``, ours a bit more."""
    args = [str(binary), str(history), "--timeout", f"{timeout}s"]
    if out is not None:
        args += ["--out", str(out)]
    done = subprocess.run(
        args, check=False, capture_output=True, text=True, timeout=2 * timeout + 10
    )
    return Verdict(done.stdout.strip(), done.returncode, done.stderr)
