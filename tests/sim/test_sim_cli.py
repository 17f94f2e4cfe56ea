"""``raftpod-sim``'s output and exit codes, including a real failure found, shrunk and traced."""

from __future__ import annotations

import re

import pytest

from raftpod_sidecar.raft.sessions import SessionTable
from raftpod_sidecar.sim import cli
from raftpod_sidecar.sim.options import SimOptions, parse_faults, parse_seed_range
from raftpod_sidecar.sim.runner import run, run_and_shrink

SUMMARY = re.compile(
    r"^seed=7 nodes=3 steps=400 faults=drop,partition leaders=\d+ terms=\d+ committed=\d+ "
    r"applied=\d+ snapshots=\d+ confchanges=\d+ transfers=\d+ reads=\d+ forwards=\d+ ok$"
)


def test_a_clean_seed_prints_one_line_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--seed", "7", "--steps", "400", "--faults", "partition,drop"]) == 0
    assert SUMMARY.match(capsys.readouterr().out.strip())


def test_a_range_prints_a_total(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--seeds", "0..3", "--steps", "300", "--quiet"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    assert out[0].startswith("seeds=0..3 runs=4 failed=0 ")


@pytest.mark.parametrize(
    "argv",
    [
        ["--seed", "1", "--faults", "drop,meteor"],
        ["--seeds", "5..1"],
        ["--seed", "1", "--nodes", "0"],
        ["--seeds", "0..2", "--trace", "x"],
        ["--steps", "10"],
        ["--seed", "1", "--trace-lines", "-1"],
        ["--seed", "1", "--trace", "/nonexistent-dir/trace.txt"],  # refused before the run
    ],
)
def test_bad_arguments_exit_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        cli.main(argv)
    assert caught.value.code == 2


def test_fault_and_seed_parsing() -> None:
    assert parse_faults("clock,drop") == ("drop", "clock")
    assert parse_faults("none") == ()
    assert parse_seed_range("3..5") == range(3, 6)
    with pytest.raises(ValueError, match=r"--seeds a\.\.b: A and B must be integers"):
        parse_seed_range("a..b")


def _break_sessions(monkeypatch: pytest.MonkeyPatch) -> None:
    """A core-side bug to find: the session table never recognises a retry."""
    monkeypatch.setattr(SessionTable, "lookup", lambda self, client, seq: None)


def test_a_violation_exits_1_with_seed_invariant_and_trace(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _break_sessions(monkeypatch)
    assert cli.main(["--seeds", "0..9", "--steps", "1500", "--trace-lines", "30"]) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out
    phase = r"\((in the fault phase|after healing)\)"
    assert re.search(rf"VIOLATION seed=\d+ step=\d+ {phase}: Exactly Once: ", out)
    assert re.search(r"reproduce: raftpod-sim --seed \d+ --nodes 3 --steps \d+ --faults ", out)
    trace = out.split("events):\n", 1)[1].splitlines()
    assert len(trace) >= 30
    assert all(line.startswith("  ") for line in trace[:30])
    assert re.search(r"^seeds=0\.\.9 runs=10 failed=[1-9]", out, re.MULTILINE)


def test_shrinking_keeps_the_failure_and_makes_it_smaller(monkeypatch: pytest.MonkeyPatch) -> None:
    _break_sessions(monkeypatch)
    failing = (run(SimOptions(seed, 3, 1500)) for seed in range(10))
    original = next(result for result in failing if result.failure is not None)
    assert original.failure is not None
    shrunk = run_and_shrink(original.options)
    assert shrunk.failure is not None
    assert shrunk.failure.invariant == original.failure.invariant
    assert shrunk.options.steps <= original.failure.step
    assert set(shrunk.options.faults) <= set(original.options.faults)
    assert shrunk.trace, "the shrunk run is replayed with its trace"
    replay = run(shrunk.options)
    assert replay.failure == shrunk.failure
