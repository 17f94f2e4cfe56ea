"""``scripts/testbin`` says how it is used, and refuses what it does not know."""

from __future__ import annotations

import subprocess
from pathlib import Path

TESTBIN = Path(__file__).resolve().parents[2] / "scripts" / "testbin"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(TESTBIN), *args], capture_output=True, text=True, timeout=30, check=False
    )


def test_help_prints_the_commands() -> None:
    for flag in ("--help", "-h", "help"):
        done = _run(flag)
        assert done.returncode == 0, done.stderr
        assert "scripts/testbin build" in done.stdout
        assert "scripts/testbin path NAME" in done.stdout
        assert "set -euo" not in done.stdout


def test_an_unknown_command_or_binary_is_an_error() -> None:
    done = _run("bogus")
    assert done.returncode == 1
    assert "unknown command bogus" in done.stderr
    done = _run("path", "no-such-binary")
    assert done.returncode == 1
    assert "unknown binary no-such-binary" in done.stderr
