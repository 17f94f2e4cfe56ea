"""``raftpod-sim``: run seeds of the deterministic simulation; exit 1 on any violation.

Examples::

    raftpod-sim --seed 7 --nodes 3 --steps 2000 --faults drop,partition,crash
    raftpod-sim --seeds 0..1000000 --jobs 8 --quiet      # overnight
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator, Sequence

from ..cli_output import open_for_writing
from .options import FAULT_KINDS, SimOptions, parse_faults, parse_seed_range
from .runner import report, run, run_many

DEFAULT_STEPS = 2000
PROGRESS_EVERY = 10_000  # runs between progress lines of a long --seeds range


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="raftpod-sim",
        description="Deterministic simulation of raftpod's Raft core: N nodes, one seed, "
        "faults, invariants checked after every step.",
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--seed", type=int, help="run this one seed")
    which.add_argument("--seeds", metavar="A..B", help="run seeds A to B inclusive")
    parser.add_argument("--nodes", type=int, default=3, help="founding voters (default 3)")
    parser.add_argument(
        "--steps", type=int, default=DEFAULT_STEPS, help="virtual time units of the fault phase"
    )
    parser.add_argument(
        "--faults",
        default="all",
        help=f"comma-separated from {','.join(FAULT_KINDS)}, or 'all' (default) or 'none'",
    )
    parser.add_argument("--jobs", type=int, default=1, help="worker processes for --seeds")
    parser.add_argument("--quiet", action="store_true", help="print only failures and a total")
    parser.add_argument(
        "--trace-lines", type=int, default=200, help="trace events printed for a failure"
    )
    parser.add_argument("--trace", metavar="FILE", help="write the full event trace of --seed")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        faults = parse_faults(args.faults)
        seeds = (
            range(args.seed, args.seed + 1)
            if args.seed is not None
            else parse_seed_range(args.seeds)
        )
    except ValueError as exc:
        parser.error(str(exc))
    if args.nodes < 1 or args.steps < 1 or args.jobs < 1:
        parser.error("--nodes, --steps and --jobs must be at least 1")
    if args.trace_lines < 0:
        parser.error("--trace-lines must not be negative")
    if args.trace and args.seed is None:
        parser.error("--trace needs --seed")

    if args.trace:
        with open_for_writing(parser, "--trace", args.trace) as out:
            traced = run(SimOptions(args.seed, args.nodes, args.steps, faults), trace=True)
            out.writelines(line + "\n" for line in traced.trace)

    options: Iterator[SimOptions] = (SimOptions(s, args.nodes, args.steps, faults) for s in seeds)
    started = time.monotonic()
    failed = 0
    for done, result in enumerate(run_many(options, args.jobs), start=1):
        if not result.ok:
            failed += 1
            print("\n".join(report(result, args.trace_lines)), flush=True)
        elif not args.quiet:
            print(result.summary, flush=True)
        if done % PROGRESS_EVERY == 0 and done < len(seeds):
            print(f"progress: {_totals(seeds, done, failed, started)}", flush=True)
    if len(seeds) > 1:
        print(_totals(seeds, len(seeds), failed, started), flush=True)
    return 1 if failed else 0


def _totals(seeds: range, done: int, failed: int, started: float) -> str:
    elapsed = time.monotonic() - started
    return (
        f"seeds={seeds.start}..{seeds.stop - 1} runs={done} failed={failed} "
        f"elapsed={elapsed:.1f}s seeds/s={done / max(elapsed, 1e-9):.1f}"
    )


if __name__ == "__main__":
    sys.exit(main())
