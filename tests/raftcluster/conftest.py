"""Shared set-up for the operator's unit tests (tests/raftcluster)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import kopf
import pytest

# kopf posts events through these context variables; the tests collect them in a queue
from kopf._core.engines.posting import event_queue_loop_var, event_queue_var, settings_var

# the helper module ``raftcluster_env`` sits beside the tests (importlib mode adds no paths)
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
async def events() -> AsyncIterator[asyncio.Queue[Any]]:
    """What kopf.event/kopf.warn post, as kopf's poster would receive it."""
    queue: asyncio.Queue[Any] = asyncio.Queue()
    tokens = (
        event_queue_var.set(queue),
        event_queue_loop_var.set(asyncio.get_running_loop()),
        settings_var.set(kopf.OperatorSettings()),
    )
    yield queue
    event_queue_var.reset(tokens[0])
    event_queue_loop_var.reset(tokens[1])
    settings_var.reset(tokens[2])
