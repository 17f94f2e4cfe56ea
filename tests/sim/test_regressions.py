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
    # workload false alarms: the liveness probe, which writes through a follower's PROP,
    # picked followers at random and kept landing on ones still installing a snapshot in
    # 16-byte chunks, which could not apply (and so answer) it within the heal budget,
    # here a voter and, in a one-voter cluster, the only follower, a learner; it now goes
    # through the most caught-up voting follower, or else the leader
    pytest.param(SimOptions(276, 3, 2000, ("crash", "restart")), id="276-probe-via-lagging"),
    pytest.param(SimOptions(270, 1, 2000, ()), id="270-probe-via-lagging-learner"),
]


@pytest.mark.parametrize("options", REGRESSIONS)
def test_regression_seed(options: SimOptions) -> None:
    result = run(options)
    assert result.ok, f"{options.command_line()}: {result.failure}"
