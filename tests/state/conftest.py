"""The ``feed`` fixture: a fresh StateMachine fed through ``Feeder``."""

from __future__ import annotations

import pytest

from .feeder import Feeder


@pytest.fixture
def feed() -> Feeder:
    return Feeder()
