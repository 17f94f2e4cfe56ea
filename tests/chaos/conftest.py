"""Fixtures for the chaos tests: the porcupine-check binary, a proxied cluster."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from .checker import porcupine_binary
from .proxied import Proxied, proxied_cluster


@pytest.fixture
def porcupine() -> Path:
    return porcupine_binary()


@pytest.fixture
async def proxied(tmp_path: Path) -> AsyncIterator[Proxied]:
    """Three running nodes talking through proxy links, with a leader; always torn down."""
    async with proxied_cluster(tmp_path / "cluster") as running:
        yield running
