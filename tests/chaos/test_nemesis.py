"""The nemesis schedule is seeded and bounded, and the runner always undoes its faults.

The runner is driven against ``FakeTargets`` (a recorder standing in for node
processes) and a real ``Network`` of proxy links that nothing dials.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import pytest

from .nemesis import LEADER, Fault, Kind, Nemesis, links_for, plan
from .proxy import Mode, Network

NODES = ("n1", "n2", "n3")


class FakeTargets:
    """Records what the nemesis did to "processes"; n2 always leads."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.paused = asyncio.Event()

    async def kill(self, node: str) -> None:
        self.calls.append(("kill", node))

    async def restart(self, node: str) -> None:
        self.calls.append(("restart", node))

    async def pause(self, node: str) -> None:
        self.calls.append(("pause", node))
        self.paused.set()

    async def resume(self, node: str) -> None:
        self.calls.append(("resume", node))

    async def leader(self) -> str | None:
        return "n2"


def test_plan_is_a_function_of_the_seed_and_fits_the_time() -> None:
    first = plan(random.Random(7), NODES, 30)
    assert first == plan(random.Random(7), NODES, 30)
    assert first != plan(random.Random(8), NODES, 30)
    for seed in range(20):
        faults = plan(random.Random(seed), NODES, 30)
        assert sum(f.hold + f.quiet for f in faults) <= 30
        assert all(1.0 <= f.hold <= 4.0 and 0.5 <= f.quiet <= 2.0 for f in faults)
        assert len(faults) >= 5
    seen = {f.kind for seed in range(20) for f in plan(random.Random(seed), NODES, 30)}
    assert seen == set(Kind)


def test_partition_links() -> None:
    rng = random.Random(1)
    isolate = links_for(Fault(Kind.ISOLATE, "n1", 1, 1), "n1", NODES, rng)
    assert isolate == {("n1", "n2"), ("n1", "n3"), ("n2", "n1"), ("n3", "n1")}
    inbound = links_for(Fault(Kind.INBOUND, "n1", 1, 1), "n1", NODES, rng)
    assert inbound == {("n2", "n1"), ("n3", "n1")}
    outbound = links_for(Fault(Kind.OUTBOUND, "n1", 1, 1), "n1", NODES, rng)
    assert outbound == {("n1", "n2"), ("n1", "n3")}
    five = ("a", "b", "c", "d", "e")
    split = links_for(Fault(Kind.SPLIT, "a", 1, 1, side=2), "a", five, rng)
    side = {n for n in five if ("a", n) not in split}
    rest = set(five) - side
    assert len(side) == 2 and "a" in side
    assert split == {(x, y) for x in side for y in rest} | {(y, x) for x in side for y in rest}


@pytest.fixture
async def network() -> AsyncIterator[Network]:
    net = Network()
    await net.full_mesh(NODES)  # never dialed
    yield net
    await net.close()


async def test_every_fault_is_undone(network: Network) -> None:
    targets = FakeTargets()
    nemesis = Nemesis(targets, network, NODES, random.Random(3))
    faults = [
        Fault(Kind.KILL, LEADER, 0.01, 0.01),
        Fault(Kind.PAUSE, "n3", 0.01, 0.01),
        Fault(Kind.ISOLATE, "n1", 0.01, 0.01, Mode.RESET),
        Fault(Kind.INBOUND, LEADER, 0.01, 0.01),
    ]
    await asyncio.wait_for(nemesis.run(faults), 5)
    assert targets.calls == [("kill", "n2"), ("restart", "n2"), ("pause", "n3"), ("resume", "n3")]
    events = [(e["event"], e.get("node")) for e in nemesis.events]
    assert events == [
        ("start", "n2"), ("restart", "n2"),
        ("start", "n3"), ("resume", "n3"),
        ("start", "n1"), ("cut", None), ("heal", None),
        ("start", "n2"), ("cut", None), ("heal", None),
    ]  # fmt: skip
    assert nemesis.events[8]["links"] == [("n1", "n2"), ("n3", "n2")]
    assert network.cut_links() == set()


async def test_cancelled_nemesis_still_heals_and_resumes(network: Network) -> None:
    targets = FakeTargets()
    nemesis = Nemesis(targets, network, NODES, random.Random(3))
    faults = [Fault(Kind.SPLIT, "n1", 0.01, 0.01), Fault(Kind.PAUSE, "n1", 60, 60)]
    task = asyncio.create_task(nemesis.run(faults))
    await asyncio.wait_for(targets.paused.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert targets.calls == [("pause", "n1"), ("resume", "n1")]
    assert network.cut_links() == set() and not nemesis.paused
