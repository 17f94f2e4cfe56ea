"""A cluster of real nodes whose peer traffic all goes through the fault-injecting proxy.

Nodes come from tests/sidecar/cluster.py; every node's ``--peers`` names its
own proxy link for each other node (see ``proxy``). ``ClusterTargets`` is what
the nemesis does to the node processes. Blocking calls run off the event loop,
which also carries every peer byte through the proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from ..sidecar.cluster import Cluster
from .proxy import Network

NODES = 3
NODE_FLAGS = ("--snapshot-entries", "200")
"""Small snapshots, so a node that comes back late may need InstallSnapshot."""
LEADER_TIMEOUT = 30.0


class ClusterTargets:
    """The nemesis's hands on the node processes."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.paused: set[str] = set()

    async def kill(self, node: str) -> None:
        await asyncio.to_thread(self.cluster[node].kill, signal.SIGKILL)

    async def restart(self, node: str) -> None:
        await asyncio.to_thread(self.cluster[node].start)

    def _signal(self, node: str, sig: int) -> None:
        proc = self.cluster[node].proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(sig)

    async def pause(self, node: str) -> None:
        self.paused.add(node)
        self._signal(node, signal.SIGSTOP)

    async def resume(self, node: str) -> None:
        self._signal(node, signal.SIGCONT)
        self.paused.discard(node)

    async def leader(self) -> str | None:
        for node in self.cluster.alive():
            if node.id in self.paused:
                continue
            with contextlib.suppress(Exception):
                status = await asyncio.to_thread(node.status)
                leader = status.get("leader")
                if leader in self.cluster.nodes:
                    return str(leader)
        return None

    def release(self) -> None:
        """Teardown: continue every process, whatever the nemesis left."""
        for node in self.cluster.nodes:
            self._signal(node, signal.SIGCONT)
        self.paused.clear()


@dataclass
class Proxied:
    """A running cluster whose peer traffic all goes through ``network``."""

    cluster: Cluster
    network: Network
    targets: ClusterTargets


@contextlib.asynccontextmanager
async def proxied_cluster(root: Path) -> AsyncIterator[Proxied]:
    """Three nodes dialing each other through proxy links, with a leader; always torn down
    (processes continued and killed, proxy closed); logs printed when the set-up fails."""
    network = Network()
    await network.full_mesh(f"n{i}" for i in range(1, NODES + 1))  # cluster.py's ids
    cluster = Cluster(root, NODES, NODE_FLAGS)
    targets = ClusterTargets(cluster)
    try:
        network.route({n.id: n.peer_port for n in cluster.nodes.values()})
        for node in cluster.nodes.values():
            peers = network.peers_flag(node.id, node.peer_address)
            node.args = ["--peers", peers, *cluster.extra_args]
        await asyncio.to_thread(cluster.start)
        try:
            await asyncio.to_thread(cluster.leader, LEADER_TIMEOUT)
        except AssertionError:
            print(cluster.dump_logs())
            raise
        yield Proxied(cluster, network, targets)
    finally:
        targets.release()
        await asyncio.to_thread(cluster.close)
        await network.close()
