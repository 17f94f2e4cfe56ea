"""A log-bucketed latency histogram: ~1% precision, mergeable across generator processes.

Keeping every sample would also work at these rates, but buckets make merging
the two generator processes' results and shipping them as JSON cheap, and a
1% error on a percentile is far below the run-to-run noise.
"""

from __future__ import annotations

import math
from collections import Counter

# Bucket b holds latencies in [exp(b / RESOLUTION), exp((b + 1) / RESOLUTION)) microseconds.
RESOLUTION = 100


class LatencyHistogram:
    """Counts of latencies per logarithmic bucket."""

    def __init__(self, counts: dict[int, int] | None = None) -> None:
        self.counts: Counter[int] = Counter(counts or {})

    def record(self, seconds: float) -> None:
        micros = max(seconds * 1e6, 1.0)
        self.counts[int(math.log(micros) * RESOLUTION)] += 1

    def merge(self, other: LatencyHistogram) -> None:
        self.counts.update(other.counts)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def percentile(self, fraction: float) -> float | None:
        """The latency in seconds below which ``fraction`` of samples fall; None if empty."""
        total = self.total
        if total == 0:
            return None
        rank = max(1, math.ceil(fraction * total))
        seen = 0
        for bucket in sorted(self.counts):
            seen += self.counts[bucket]
            if seen >= rank:
                # The bucket's geometric middle, in seconds.
                return math.exp((bucket + 0.5) / RESOLUTION) / 1e6
        raise AssertionError("unreachable: rank <= total")

    def to_json(self) -> dict[str, int]:
        return {str(bucket): count for bucket, count in sorted(self.counts.items())}

    @classmethod
    def from_json(cls, doc: dict[str, int]) -> LatencyHistogram:
        return cls({int(bucket): int(count) for bucket, count in doc.items()})
