"""The event trace of a run: off for speed, switched on to replay a failing seed.

A run is deterministic, so a seed that failed untraced is simply replayed with
the trace on; identical seeds give byte-identical traces (the tests compare them).
"""

from __future__ import annotations


class Trace:
    def __init__(self, enabled: bool = False) -> None:
        self.enabled = enabled
        self.lines: list[str] = []

    def add(self, now: int, text: str) -> None:
        """Record ``text`` at virtual time ``now`` (callers test ``enabled`` first)."""
        self.lines.append(f"{now:>6} {text}")

    def tail(self, count: int) -> list[str]:
        return self.lines[-count:] if count > 0 else []
