"""The nemesis: a seeded, time-bounded schedule of faults, and the runner that applies it.

``plan`` is pure (one ``random.Random`` decides every fault, target, mode and
duration), so a seed names a schedule; only "the current leader" as a target
is resolved at run time. ``Nemesis.run`` applies one fault at a time, holds
it, undoes it, and lets the cluster calm down before the next; whatever
happens (an error, a cancellation), it ends with every link healed, every
paused node continued and every killed node restarted.
"""

from __future__ import annotations

import asyncio
import enum
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from .proxy import Link, Mode, Network

LEADER = "@leader"
"""A fault target meaning "whichever node leads when the fault starts"."""


class Kind(enum.Enum):
    KILL = "kill"  # SIGKILL, restart when the fault ends
    PAUSE = "pause"  # SIGSTOP, SIGCONT when the fault ends
    ISOLATE = "isolate"  # the target's links in both directions
    SPLIT = "split"  # a random minority (containing the target) from the majority
    INBOUND = "inbound"  # the target can send but hears nothing (asymmetric)
    OUTBOUND = "outbound"  # the target hears everything but nobody hears it


@dataclass(frozen=True)
class Fault:
    kind: Kind
    target: str  # a node id or LEADER
    hold: float  # seconds the fault lasts
    quiet: float  # seconds of calm after it is undone
    mode: Mode = Mode.DROP  # how partition links are cut
    side: int = 1  # SPLIT: nodes on the target's side of the cut (a minority)

    def describe(self) -> dict[str, Any]:
        return {**asdict(self), "kind": self.kind.value, "mode": self.mode.value}


def plan(
    rng: random.Random,
    nodes: Sequence[str],
    seconds: float,
    hold: tuple[float, float] = (1.0, 4.0),
    quiet: tuple[float, float] = (0.5, 2.0),
) -> list[Fault]:
    """Faults whose holds and quiets add up to at most ``seconds``."""
    faults: list[Fault] = []
    used = 0.0
    kinds = list(Kind)
    while len(faults) < 10_000:
        kind = rng.choice(kinds)
        target = LEADER if rng.random() < 0.5 else rng.choice(list(nodes))
        fault = Fault(
            kind,
            target,
            round(rng.uniform(*hold), 3),
            round(rng.uniform(*quiet), 3),
            Mode.RESET if rng.random() < 0.3 else Mode.DROP,
            rng.randint(1, max(1, (len(nodes) - 1) // 2)) if kind == Kind.SPLIT else 1,
        )
        if used + fault.hold + fault.quiet > seconds:
            break
        faults.append(fault)
        used += fault.hold + fault.quiet
    return faults


def links_for(fault: Fault, target: str, nodes: Sequence[str], rng: random.Random) -> set[Link]:
    """The directed links a partition fault cuts once its target is known."""
    others = [n for n in nodes if n != target]
    if fault.kind == Kind.INBOUND:
        return {(n, target) for n in others}
    if fault.kind == Kind.OUTBOUND:
        return {(target, n) for n in others}
    side = {target}
    if fault.kind == Kind.SPLIT:
        side |= set(rng.sample(sorted(others), fault.side - 1))
    rest = [n for n in nodes if n not in side]
    return {(a, b) for a in side for b in rest} | {(b, a) for a in side for b in rest}


class Targets(Protocol):
    """What the nemesis does to node processes."""

    async def kill(self, node: str) -> None: ...
    async def restart(self, node: str) -> None: ...
    async def pause(self, node: str) -> None: ...
    async def resume(self, node: str) -> None: ...
    async def leader(self) -> str | None: ...


class Nemesis:
    """Applies a plan to ``targets`` and ``network``; ``events`` is its timeline."""

    def __init__(
        self, targets: Targets, network: Network, nodes: Sequence[str], rng: random.Random
    ) -> None:
        self.targets = targets
        self.network = network
        self.nodes = list(nodes)
        self.rng = rng
        self.killed: set[str] = set()
        self.paused: set[str] = set()
        self.events: list[dict[str, Any]] = []

    def _note(self, event: str, **fields: Any) -> None:
        self.events.append({"time": time.monotonic_ns(), "event": event, **fields})

    async def run(self, faults: Sequence[Fault]) -> None:
        try:
            for fault in faults:
                await self._apply(fault)
                await asyncio.sleep(fault.hold)  # the fault lasts this long (not a sync)
                await self.undo()
                await asyncio.sleep(fault.quiet)
        finally:
            await self.undo()

    async def _apply(self, fault: Fault) -> None:
        target = fault.target
        if target == LEADER:
            target = await self.targets.leader() or self.rng.choice(self.nodes)
        self._note("start", **fault.describe(), node=target)
        if fault.kind == Kind.KILL:
            self.killed.add(target)
            await self.targets.kill(target)
        elif fault.kind == Kind.PAUSE:
            self.paused.add(target)
            await self.targets.pause(target)
        else:
            links = links_for(fault, target, self.nodes, self.rng)
            self.network.cut(links, fault.mode)
            self._note("cut", links=sorted(links))

    async def undo(self) -> None:
        """Heal the network, continue paused nodes, restart killed ones."""
        if self.network.cut_links():
            self.network.heal()
            self._note("heal")
        while self.paused:
            node = self.paused.pop()
            await self.targets.resume(node)
            self._note("resume", node=node)
        while self.killed:
            node = self.killed.pop()
            await self.targets.restart(node)
            self._note("restart", node=node)
