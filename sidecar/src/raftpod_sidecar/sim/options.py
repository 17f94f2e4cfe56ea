"""What one simulated run is: seed, cluster size, step budget and the fault kinds enabled."""

from __future__ import annotations

from typing import NamedTuple

FAULT_KINDS = ("drop", "reorder", "duplicate", "partition", "crash", "restart", "clock")


class SimOptions(NamedTuple):
    seed: int
    nodes: int = 3
    steps: int = 1000
    faults: tuple[str, ...] = FAULT_KINDS  # always in FAULT_KINDS order

    def command_line(self) -> str:
        """The ``raftpod-sim`` invocation that replays this run."""
        faults = ",".join(self.faults) or "none"
        return (
            f"raftpod-sim --seed {self.seed} --nodes {self.nodes} "
            f"--steps {self.steps} --faults {faults}"
        )


def parse_faults(text: str) -> tuple[str, ...]:
    """``"drop,crash"`` -> the kinds in canonical order; ``all`` and ``none`` accepted."""
    text = text.strip()
    if text == "all":
        return FAULT_KINDS
    if text in ("", "none"):
        return ()
    wanted = {part.strip() for part in text.split(",") if part.strip()}
    unknown = sorted(wanted.difference(FAULT_KINDS))
    if unknown:
        raise ValueError(
            f"unknown fault kind(s) {', '.join(unknown)}; choose from {', '.join(FAULT_KINDS)}"
        )
    return tuple(kind for kind in FAULT_KINDS if kind in wanted)


def parse_seed_range(text: str) -> range:
    """``"A..B"`` -> seeds A to B inclusive."""
    lo, sep, hi = text.partition("..")
    if not sep:
        raise ValueError(f"--seeds wants A..B, got {text!r}")
    try:
        first, last = int(lo), int(hi)
    except ValueError:
        raise ValueError(f"--seeds {text}: A and B must be integers") from None
    if last < first:
        raise ValueError(f"--seeds {text}: the range is empty")
    return range(first, last + 1)
