"""The simulated network: a heap of ``(deliver_at, seq, message)`` and the links' faults.

Latency, loss, duplication, reordering and cut links are all decided here from
RNG streams the run derives from its seed, one stream per fault kind, so that
turning one kind off while shrinking leaves the others' choices unchanged.
Without reordering each directed link is FIFO (like a TCP connection); with it,
every message gets its own latency, and a few get a long one (a retransmit, a
paused process): timing assumptions such as leases must survive that tail.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass

from ..raft.messages import Message

Link = tuple[str, str]


@dataclass
class LinkFaults:
    """How unreliable the links are right now (all zero: a perfect network)."""

    drop_rate: float = 0.0
    duplicate_rate: float = 0.0
    reorder: bool = False
    slow_rate: float = 0.0  # with reorder: the share of messages in the long tail


class Network:
    """Messages in flight between simulated nodes, delivered in virtual time."""

    def __init__(
        self,
        latency: tuple[int, int],
        reorder_latency: tuple[int, int],
        seed: str,
        slow_latency: tuple[int, int] = (0, 0),
    ) -> None:
        self.latency = latency
        self.reorder_latency = reorder_latency
        self.slow_latency = slow_latency
        self.faults = LinkFaults()
        self._latency_rng = random.Random(f"{seed}/latency")
        self._drop_rng = random.Random(f"{seed}/drop")
        self._duplicate_rng = random.Random(f"{seed}/duplicate")
        self._heap: list[tuple[int, int, Message]] = []
        self._seq = 0
        self._fifo_tail: dict[Link, int] = {}
        self._cut: set[Link] = set()
        self._slow: set[Link] = set()
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._heap)

    # -- links -------------------------------------------------------------------
    def cut(self, frm: str, to: str) -> None:
        """Stop ``frm -> to`` (one direction only: an asymmetric partition)."""
        self._cut.add((frm, to))

    def partition(self, side_a: list[str], side_b: list[str]) -> None:
        """Cut every link between the two sides, both ways."""
        for a in side_a:
            for b in side_b:
                self._cut.add((a, b))
                self._cut.add((b, a))

    def slow_down(self, frm: str, to: str) -> None:
        """Make ``frm -> to`` deliver everything in the long tail (with reordering on)."""
        self._slow.add((frm, to))

    def heal(self) -> None:
        """Mend every cut link."""
        self._cut.clear()

    def heal_slow(self) -> None:
        self._slow.clear()

    def reachable(self, frm: str, to: str) -> bool:
        return (frm, to) not in self._cut

    @property
    def partitioned(self) -> bool:
        return bool(self._cut)

    # -- traffic -----------------------------------------------------------------
    def send(self, msg: Message, now: int) -> None:
        """Put ``msg`` on the wire; a cut link loses it now, one cut later does not recall it."""
        if (msg.frm, msg.to) in self._cut:
            self.dropped += 1
            return
        if self.faults.drop_rate and self._drop_rng.random() < self.faults.drop_rate:
            self.dropped += 1
            return
        self._enqueue(msg, now)
        if self.faults.duplicate_rate and self._duplicate_rng.random() < self.faults.duplicate_rate:
            self._enqueue(msg, now)

    def _enqueue(self, msg: Message, now: int) -> None:
        if self.faults.reorder:
            rng = self._latency_rng
            slow = (msg.frm, msg.to) in self._slow or (
                self.faults.slow_rate and rng.random() < self.faults.slow_rate
            )
            at = now + rng.randint(*(self.slow_latency if slow else self.reorder_latency))
        else:
            link = (msg.frm, msg.to)
            at = max(now + self._latency_rng.randint(*self.latency), self._fifo_tail.get(link, 0))
            self._fifo_tail[link] = at
        self._seq += 1
        heapq.heappush(self._heap, (at, self._seq, msg))

    def due(self, now: int) -> list[Message]:
        """Pop every message due by ``now``, in delivery order."""
        out: list[Message] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            out.append(heapq.heappop(heap)[2])
        return out
