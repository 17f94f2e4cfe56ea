"""Static checks of the Dockerfile (no image is built in unit tests: no daemon, no registry)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1]) for ln in lines]


def test_multi_stage_slim_non_root_without_healthcheck() -> None:
    steps = instructions()
    froms = [arg for op, arg in steps if op == "FROM"]
    assert len(froms) == 2 and froms[0].endswith("AS build")
    assert ("ARG", "PYTHON_IMAGE=python:3.11-slim") in steps
    users = [arg for op, arg in steps if op == "USER"]
    assert users and not re.match(r"^(0|root)\b", users[-1])
    assert all(op != "HEALTHCHECK" for op, _ in steps)
    assert any(op == "LABEL" for op, _ in steps)


def test_both_entry_points_are_checked_at_build_time() -> None:
    run = " ".join(arg for op, arg in instructions() if op == "RUN")
    assert "raftpod-operator --version" in run and "raftpod-sidecar --help" in run


def test_dockerignore_keeps_the_context_small() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", "tests", "tools"} <= ignored
    assert not {"sidecar", "operator", "pyproject.toml", "README.md"} & ignored
