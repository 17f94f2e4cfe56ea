"""A client that increments the example app's counter without pause, and what it saw.

It behaves like a client behind the cluster's Service: it sends each request
to the next ready, not-terminating pod (the endpoints a Service would list),
and on an error moves on to the next one. What it records answers the
issue's questions: how many requests failed, the longest time between two
acknowledged writes, and every acknowledged value (so a lost write shows as a
final count below the highest acknowledged value, or as a duplicate value).
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.raftcluster_e2e.counter_cluster import Clusters, app_call, poll

TARGET_REFRESH_SECONDS = 1.0
PACE_SECONDS = 0.05  # between requests: a steady stream, not a CPU hog on a shared machine
REQUEST_TIMEOUT = 15.0  # the app gives up on its sidecar after 10 s
STOP_TIMEOUT = 30.0


@dataclass
class WriteRecord:
    """Acknowledged values with their times, and the failed requests."""

    started: float = 0.0
    stopped: float = 0.0
    acknowledged: list[tuple[float, int]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def values(self) -> list[int]:
        return [v for _, v in self.acknowledged]

    def longest_gap(self) -> float:
        """Longest time without an acknowledged write (start and stop count as edges)."""
        times = [self.started, *(t for t, _ in self.acknowledged), self.stopped]
        return max(b - a for a, b in itertools.pairwise(times))

    def summary(self) -> str:
        return (
            f"{len(self.acknowledged)} acknowledged, {len(self.failures)} failed, "
            f"longest gap {self.longest_gap():.2f}s over {self.stopped - self.started:.1f}s"
        )


class CounterWriter:
    """Increments in a background thread until `stop()`; `targets()` lists ready pod IPs."""

    def __init__(self, targets: Callable[[], list[str]]) -> None:
        self._targets = targets
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="counter-writer", daemon=True)
        self.record = WriteRecord()

    def __enter__(self) -> CounterWriter:
        self.record.started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> WriteRecord:
        if not self._stop.is_set():
            self._stop.set()
            self._thread.join(timeout=STOP_TIMEOUT)
            self.record.stopped = time.monotonic()
        return self.record

    def _run(self) -> None:
        ips: list[str] = []
        refreshed = 0.0
        turn = 0
        while not self._stop.is_set():
            now = time.monotonic()
            if now - refreshed >= TARGET_REFRESH_SECONDS or not ips:
                with contextlib.suppress(Exception):  # a slow API server is no write failure
                    ips = self._targets()
                refreshed = now
            if not ips:
                self._stop.wait(PACE_SECONDS)
                continue
            ip = ips[turn % len(ips)]
            turn += 1
            try:
                answer = app_call(ip, "/increment", post=True, timeout=REQUEST_TIMEOUT)
                self.record.acknowledged.append((time.monotonic(), int(answer["value"])))
            except (AssertionError, OSError, ValueError, KeyError) as exc:
                elapsed = time.monotonic() - self.record.started
                self.record.failures.append(f"at {elapsed:.1f}s {ip}: {exc}")
                refreshed = 0.0  # the pod may be gone: look again before the next request
            self._stop.wait(PACE_SECONDS)


def check_writes(clusters: Clusters, name: str, record: WriteRecord, what: str) -> None:
    """No acknowledged write lost or doubled; print the figures the issue asks for."""
    print(f"{what}: {record.summary()}")
    for failure in record.failures[:10]:
        print(f"  failed: {failure}")
    values = record.values
    assert values, f"{what}: no write was acknowledged"
    assert len(set(values)) == len(values), f"{what}: a value was acknowledged twice"
    [ip, *_] = poll(lambda: clusters.ready_ips(name), "a ready pod", 60)
    final = int(app_call(ip, "/count")["value"])
    assert final >= max(values), f"{what}: count {final} below acknowledged {max(values)}"
