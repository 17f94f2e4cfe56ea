"""Run one seed (fault phase, heal, liveness), shrink a failure, and run ranges of seeds.

A run is a pure function of its ``SimOptions``: the RNG streams ignore the step
budget, so replaying with ``steps`` cut to the failing step reproduces the same
failure, and the shrinker only ever replays.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from .cluster import ELECTION_TICKS, TICK, Cluster
from .faults import FaultInjector
from .invariants import LIVENESS, Violation
from .options import SimOptions
from .trace import Trace
from .workload import Workload

HEAL_BUDGET = 10 * ELECTION_TICKS[1] * TICK
"""Virtual time allowed after healing for a leader to appear and a fresh write to commit."""
SHRINK_REPLAYS = 24


@dataclass(frozen=True)
class Failure:
    invariant: str
    detail: str
    step: int  # 1-based; steps past ``options.steps`` happened after healing


@dataclass(frozen=True)
class RunResult:
    options: SimOptions
    summary: str
    failure: Failure | None
    trace: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.failure is None


class Simulation:
    """One run's parts, wired together: cluster, faults, workload."""

    def __init__(self, options: SimOptions, trace: bool = False) -> None:
        self.options = options
        self.trace = Trace(trace)
        self.cluster = Cluster(options.seed, options.nodes, self.trace)
        self.faults = FaultInjector(self.cluster, options.seed, options.faults)
        self.workload = Workload(
            self.cluster, options.seed, options.nodes, lease_checked="clock" not in options.faults
        )
        self.steps_done = 0

    def fault_phase(self) -> None:
        for _ in range(self.options.steps):
            self.steps_done += 1
            self.faults.inject()
            self.workload.act()
            self.cluster.step()

    def heal_and_probe(self) -> int:
        """Heal everything; a leader must commit a fresh write in time. Returns the time taken."""
        self.faults.heal()
        self.workload.start_probe()
        healed_at = self.cluster.now
        while not self.workload.probe_done:
            if self.cluster.now >= healed_at + HEAL_BUDGET:
                raise Violation(
                    LIVENESS,
                    f"no fresh write committed within {HEAL_BUDGET} time units of healing "
                    f"(leader: {_leader_id(self.cluster)})",
                )
            self.steps_done += 1
            self.workload.act()
            self.cluster.step()
        return self.cluster.now - healed_at

    def summary(self, ok: bool) -> str:
        options, cluster, stats = self.options, self.cluster, self.cluster.stats
        terms = max(n.disk.storage.hard_state.term for n in cluster.nodes.values())
        return (
            f"seed={options.seed} nodes={options.nodes} steps={options.steps} "
            f"faults={','.join(options.faults) or 'none'} leaders={len(cluster.checker.leaders)} "
            f"terms={terms} committed={cluster.checker.global_commit} "
            f"applied={self.workload.acked} snapshots={stats.snapshots} "
            f"confchanges={stats.confchanges} transfers={stats.transfers} reads={stats.reads} "
            f"forwards={stats.forwards} " + ("ok" if ok else "FAILED")
        )


def run(options: SimOptions, trace: bool = False) -> RunResult:
    """One complete simulated run: fault phase, then heal and the liveness probe."""
    sim = Simulation(options, trace)
    failure: Failure | None = None
    try:
        sim.fault_phase()
        sim.heal_and_probe()
    except Violation as violation:
        failure = Failure(violation.invariant, violation.detail, sim.steps_done)
    return RunResult(options, sim.summary(failure is None), failure, tuple(sim.trace.lines))


def _leader_id(cluster: Cluster) -> str:
    leader = cluster.leader()
    return leader.id if leader is not None else "none"


def shrink(result: RunResult) -> RunResult:
    """A smaller replay that fails the same invariant: fewer fault kinds, fewer steps."""
    failure = result.failure
    if failure is None:
        return result
    best = result
    replays = 0

    def attempt(options: SimOptions) -> bool:
        nonlocal best, replays
        replays += 1
        candidate = run(options)
        if candidate.failure is None or candidate.failure.invariant != failure.invariant:
            return False
        best = candidate
        return True

    # A failure before the heal needs no steps after it.
    if failure.step <= best.options.steps:
        attempt(best.options._replace(steps=failure.step))
    changed = True
    while changed and replays < SHRINK_REPLAYS:
        changed = False
        for kind in best.options.faults:
            fewer = tuple(k for k in best.options.faults if k != kind)
            steps = min(best.options.steps, _failing_step(best))
            if replays < SHRINK_REPLAYS and attempt(
                best.options._replace(faults=fewer, steps=steps)
            ):
                changed = True
                break
    # Liveness (and other post-heal) failures: try shorter fault phases.
    steps = best.options.steps
    while steps > 1 and replays < SHRINK_REPLAYS and _failing_step(best) > best.options.steps:
        steps //= 2
        if not attempt(best.options._replace(steps=steps)):
            break
    return run(best.options, trace=True)


def _failing_step(result: RunResult) -> int:
    return result.failure.step if result.failure is not None else result.options.steps


def report(result: RunResult, trace_lines: int) -> list[str]:
    """The lines printed for a failed (already shrunk) run."""
    failure = result.failure
    if failure is None:
        return [result.summary]
    phase = "after healing" if failure.step > result.options.steps else "in the fault phase"
    lines = [
        result.summary,
        f"VIOLATION seed={result.options.seed} step={failure.step} ({phase}): "
        f"{failure.invariant}: {failure.detail}",
        f"reproduce: {result.options.command_line()}",
        f"trace (last {min(trace_lines, len(result.trace))} of {len(result.trace)} events):",
    ]
    lines.extend("  " + line for line in result.trace[-trace_lines:] if trace_lines > 0)
    return lines


def run_and_shrink(options: SimOptions) -> RunResult:
    result = run(options)
    return result if result.ok else shrink(result)


def run_many(options: Iterable[SimOptions], jobs: int) -> Iterator[RunResult]:
    """Every run, in order; failures come back already shrunk and traced."""
    if jobs <= 1:
        yield from map(run_and_shrink, options)
        return
    with multiprocessing.get_context("spawn").Pool(jobs) as pool:
        yield from pool.imap(run_and_shrink, options, chunksize=8)
