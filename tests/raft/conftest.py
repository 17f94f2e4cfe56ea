"""Shared set-up for the Raft core tests: the in-memory cluster helper and ``--rewrite``."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# the helper module ``raft_env`` sits beside the tests (importlib mode adds no paths)
sys.path.insert(0, str(Path(__file__).parent))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--rewrite",
        action="store_true",
        default=False,
        help="rewrite the expected output of tests/raft/testdata/*.txt (or RAFTPOD_REWRITE=1)",
    )
