"""Shared set-up for the operator's unit tests (tests/raftcluster)."""

from __future__ import annotations

import sys
from pathlib import Path

# the helper module ``raftcluster_env`` sits beside the tests (importlib mode adds no paths)
sys.path.insert(0, str(Path(__file__).parent))
