"""The fault schedule of a run: which links fail or slow down, which nodes die, whose clock drifts.

Each fault kind draws from its own RNG stream derived from the seed, and the
intensity of each kind (loss rate, partition frequency, ...) is itself drawn per
seed, so a range of seeds covers calm runs and storms alike, and dropping one
kind while shrinking leaves the others' choices as they were.
"""

from __future__ import annotations

import random

from .cluster import TICK, Cluster, CrashPoint
from .network import LinkFaults

SKEWED_TICKS = (TICK - 1, TICK, TICK + 1, TICK + 2)
PARTITION_LENGTH = (10 * TICK, 100 * TICK)
DOWNTIME = (2 * TICK, 80 * TICK)
SLOW_LINK_RATE = 0.003
SLOW_LINK_LENGTH = (10 * TICK, 60 * TICK)


class FaultInjector:
    def __init__(self, cluster: Cluster, seed: int, kinds: tuple[str, ...]) -> None:
        self.cluster = cluster
        self.kinds = kinds
        rngs = {kind: random.Random(f"{seed}/fault/{kind}") for kind in kinds}
        self._partition_rng = rngs.get("partition")
        self._reorder_rng = rngs.get("reorder")
        self._crash_rng = rngs.get("crash")
        self._restart_rng = rngs.get("restart")
        self._clock_rng = rngs.get("clock")
        intensity = random.Random(f"{seed}/intensity")
        link = LinkFaults(
            drop_rate=intensity.choice((0.01, 0.05, 0.1, 0.2)) if "drop" in kinds else 0.0,
            duplicate_rate=intensity.choice((0.01, 0.05, 0.1)) if "duplicate" in kinds else 0.0,
            reorder="reorder" in kinds,
            slow_rate=intensity.choice((0.0, 0.01, 0.03)) if "reorder" in kinds else 0.0,
        )
        cluster.network.faults = link
        self._partition_rate = intensity.choice((0.002, 0.005, 0.01, 0.02))
        self._crash_rate = intensity.choice((0.002, 0.005, 0.01, 0.02))
        self._heal_partition_at = 0
        self._slow_until = 0
        self._restart_at: dict[str, int] = {}

    def inject(self) -> None:
        """Maybe break (or mend) something at the current virtual time."""
        if self._partition_rng is not None:
            self._partitions(self._partition_rng)
        if self._reorder_rng is not None:
            self._slow_links(self._reorder_rng)
        if self._crash_rng is not None:
            self._crashes(self._crash_rng)
        if self._restart_rng is not None:
            self._restarts(self._restart_rng)
        if self._clock_rng is not None and self._clock_rng.random() < 0.005:
            live = self.cluster.live()
            if live:
                node = self._clock_rng.choice(live)
                node.tick_every = self._clock_rng.choice(SKEWED_TICKS)
                self._trace(f"{node.id} clock: one tick per {node.tick_every} units")

    def heal(self) -> None:
        """End every fault: whole network, true clocks, every member back up."""
        cluster = self.cluster
        cluster.network.heal()
        cluster.network.heal_slow()
        cluster.network.faults = LinkFaults()
        self._restart_at.clear()
        for node in cluster.nodes.values():
            node.tick_every = TICK
            node.crash_point = None
            if not node.up and not node.removed:
                cluster.start(node.id)
        self._trace("heal: network whole, clocks true, all members up")

    # -- partitions --------------------------------------------------------------------------
    def _partitions(self, rng: random.Random) -> None:
        network, now = self.cluster.network, self.cluster.now
        if network.partitioned:
            if now >= self._heal_partition_at:
                network.heal()
                self._trace("partition healed")
            return
        if rng.random() >= self._partition_rate:
            return
        ids = sorted(n.id for n in self.cluster.nodes.values() if not n.removed)
        if len(ids) < 2:
            return
        rng.shuffle(ids)
        shape = rng.random()
        if shape < 0.4:
            cut = rng.randint(1, len(ids) - 1)
            network.partition(ids[:cut], ids[cut:])
            self._trace(f"partition {ids[:cut]} | {ids[cut:]}")
        elif shape < 0.7:
            leader = self.cluster.leader()
            if leader is not None and leader.id in ids and rng.random() < 0.6:
                ids.remove(leader.id)  # the leader is the node whose isolation tests most
                ids.insert(0, leader.id)
            network.partition(ids[:1], ids[1:])
            self._trace(f"isolate {ids[0]}")
        else:
            pairs = [(ids[i], ids[(i + 1) % len(ids)]) for i in range(rng.randint(1, len(ids)))]
            for frm, to in pairs:
                network.cut(frm, to)
            self._trace(f"one-way cuts {pairs}")
        self._heal_partition_at = now + rng.randint(*PARTITION_LENGTH)

    def _slow_links(self, rng: random.Random) -> None:
        """Now and then one directed link turns slow for a while (a congested path)."""
        network, now = self.cluster.network, self.cluster.now
        if self._slow_until and now >= self._slow_until:
            self._slow_until = 0
            network.heal_slow()
            self._trace("slow links back to normal")
        if self._slow_until or rng.random() >= SLOW_LINK_RATE:
            return
        ids = sorted(n.id for n in self.cluster.nodes.values() if not n.removed)
        if len(ids) < 2:
            return
        frm, to = rng.sample(ids, 2)
        network.slow_down(frm, to)
        self._slow_until = now + rng.randint(*SLOW_LINK_LENGTH)
        self._trace(f"slow link {frm}->{to}")

    # -- crashes and restarts ------------------------------------------------------------------
    def _crashes(self, rng: random.Random) -> None:
        if rng.random() >= self._crash_rate:
            return
        cluster = self.cluster
        live = [n for n in cluster.live() if not n.removed]
        down = sum(1 for n in cluster.nodes.values() if not n.up and not n.removed)
        if not live or (down >= len(cluster.nodes) // 2 and rng.random() > 0.1):
            return  # usually leave a majority up, so the run makes progress
        node = rng.choice(live)
        if rng.random() < 0.5:
            node.crash_point = rng.choice(list(CrashPoint))
            self._trace(f"{node.id} will crash {node.crash_point.name.lower()}")
        else:
            cluster.crash(node.id)
        if self._restart_rng is not None:
            self._restart_at[node.id] = cluster.now + self._restart_rng.randint(*DOWNTIME)

    def _restarts(self, rng: random.Random) -> None:
        cluster = self.cluster
        now = cluster.now
        due = [node_id for node_id, at in self._restart_at.items() if at <= now]
        for node_id in due:
            node = cluster.nodes[node_id]
            if node.up and node.crash_point is not None:
                continue  # still armed: it has not crashed yet
            del self._restart_at[node_id]
            if not node.up and not node.removed:
                cluster.start(node_id)
        if rng.random() < 0.002:
            live = [n for n in cluster.live() if not n.removed]
            if live:
                node = rng.choice(live)  # a quick reboot: down and straight back up
                cluster.crash(node.id, "reboot")
                cluster.start(node.id)

    def _trace(self, text: str) -> None:
        trace = self.cluster.trace
        if trace.enabled:
            trace.add(self.cluster.now, text)
