"""py-spy flame graphs of the raftpod nodes while a workload runs (``compare --profile``).

The issue's way to make raftpod fast is to measure first: this records each
node for the length of a workload, without pausing it (``--nonblocking``), into
``<dir>/<workload>-<node>.svg``. py-spy is an optional tool (``pip install
py-spy``); without it, profiling is refused up front with that hint.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

SAMPLE_RATE = 200
FINISH_SLACK_S = 30.0


class ProfilerMissingError(RuntimeError):
    """py-spy is not installed."""


def find_py_spy() -> str:
    """py-spy next to this interpreter or on PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if found is None:
        raise ProfilerMissingError("--profile needs py-spy: pip install py-spy")
    return found


@contextlib.contextmanager
def py_spy(nodes: dict[str, int], out_dir: Path, label: str, seconds: float) -> Iterator[None]:
    """Record every node in ``nodes`` (name -> pid) for ``seconds`` while the block runs."""
    binary = find_py_spy()
    out_dir.mkdir(parents=True, exist_ok=True)
    procs = [
        subprocess.Popen(
            [
                binary,
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(max(1, round(seconds))),
                "--rate",
                str(SAMPLE_RATE),
                "--nonblocking",
                "--output",
                str(out_dir / f"{label}-{name}.svg"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for name, pid in nodes.items()
    ]
    try:
        yield
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(seconds + FINISH_SLACK_S)
    finally:
        for proc in procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
