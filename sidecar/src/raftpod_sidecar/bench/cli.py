"""``raftpod-bench``: run a benchmark, print a table, write the figures as JSON.

Example::

    raftpod-bench core --entries 20000 --json bench-core.json
    raftpod-bench compare --quick        # raftpod vs etcd, see docs/performance.md
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Callable, Sequence
from typing import IO, Any

from ..cli_output import open_for_writing
from .compare import add_compare_parser
from .core import run_core


def print_table(rows: list[dict[str, Any]]) -> None:
    """A fixed-width table of ``rows`` (all with the same keys)."""
    if not rows:
        return
    keys = list(rows[0])
    cells = [[_cell(row[k]) for k in keys] for row in rows]
    widths = [max(len(k), *(len(r[i]) for r in cells)) for i, k in enumerate(keys)]
    print("  ".join(k.ljust(w) for k, w in zip(keys, widths, strict=True)))
    for row in cells:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1 else f"{value:,.1f}"
    return str(value)


def at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer of at least ``minimum``."""

    def integer(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return integer


def _core(args: argparse.Namespace) -> list[dict[str, Any]]:
    result = run_core(args.entries, args.entry_bytes, args.batch)
    return [
        {
            "benchmark": "core",
            "nodes": result.nodes,
            "entry_bytes": result.entry_bytes,
            "entries": result.entries,
            "seconds": result.seconds,
            "entries_per_s": result.entries_per_second,
            "cpu_s_per_entry": result.cpu_seconds_per_entry,
        }
    ]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="raftpod-bench", description="raftpod benchmarks")
    commands = parser.add_subparsers(dest="command", required=True)
    core = commands.add_parser(
        "core", help="committed entries/s through a 3-node in-memory cluster, no faults"
    )
    core.add_argument("--entries", type=at_least(1), default=20_000, help="entries to commit")
    core.add_argument("--entry-bytes", type=at_least(0), default=100, help="payload of each entry")
    core.add_argument("--batch", type=at_least(1), default=64, help="proposals per round")
    core.add_argument("--json", metavar="FILE", help="also write the figures to FILE as JSON")
    core.set_defaults(run=_core)
    add_compare_parser(commands)
    return parser


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one benchmark. SIGTERM unwinds like Ctrl-C, so the clusters and load
    generators it started (each in a session of its own) are stopped, not orphaned."""
    previous = signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        return _main(argv)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _main(argv: Sequence[str] | None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    out: IO[str] | None = None
    if args.json is not None:  # compare writes its own JSON under --out
        out = open_for_writing(parser, "--json", args.json)
    try:
        rows: list[dict[str, Any]] = args.run(args)
        print_table(rows)
        if out is not None:
            json.dump(rows, out, indent=2)
            out.write("\n")
            print(f"wrote {args.json}")
    finally:
        if out is not None:
            out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
