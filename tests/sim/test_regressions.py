"""Seeds that once failed, replayed with the options that reproduced them.

Each entry says what it exposed. A core bug's seed stays here after the fix;
a checker bug's seed (a false alarm) guards the checker.
"""

from __future__ import annotations

import pytest

from raftpod_sidecar.sim.options import SimOptions
from raftpod_sidecar.sim.runner import run

ALL_BUT_CLOCK = ("drop", "reorder", "duplicate", "partition", "crash", "restart")

REGRESSIONS = [
    # checker false alarm: a deposed, partitioned leader appended at an index the new
    # leader had already committed with another entry (legal: it is uncommitted on the
    # deposed leader); only a node's own committed prefix must match the committed log
    pytest.param(SimOptions(23, 3, 921, ALL_BUT_CLOCK), id="23-deposed-leader-append"),
    # core bug, fixed: a leader's lease counted from when a follower's answer *arrived*
    # (Progress.last_heard), so answers delayed in the network (here up to ~14 ticks on
    # a slow link) kept an isolated leader's lease valid after a new leader had been
    # elected and had committed; n3 answered lease read r33 at 92 with 94 committed.
    # The lease now counts from when the acknowledged message was sent (thesis 6.4.1).
    pytest.param(
        SimOptions(965, 3, 832, ("reorder", "partition")), id="965-lease-from-delayed-answers"
    ),
]


@pytest.mark.parametrize("options", REGRESSIONS)
def test_regression_seed(options: SimOptions) -> None:
    result = run(options)
    assert result.ok, f"{options.command_line()}: {result.failure}"
