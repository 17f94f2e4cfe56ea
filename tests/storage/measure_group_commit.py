"""Measure group commit on this disk: fsyncs/s and entries/s with 100-byte entries.

Usage: ``python tests/storage/measure_group_commit.py [DIR] [SECONDS]``. Not a
test: it prints figures. Each scenario runs ``writers`` concurrent tasks that
each persist ``batch`` entries and wait, so writers share fsyncs.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

from raftpod_sidecar.raft.messages import Entry
from raftpod_sidecar.storage import DurableStorage

PAYLOAD = b"x" * 100


async def scenario(path: Path, writers: int, batch: int, seconds: float) -> str:
    fsyncs: list[float] = []
    storage = DurableStorage.open(path, on_fsync=fsyncs.append)
    next_index = storage.last_index() + 1
    deadline = time.perf_counter() + seconds
    written = 0

    async def writer() -> None:
        nonlocal next_index, written
        while time.perf_counter() < deadline:
            lo = next_index
            next_index += batch
            await storage.persist(None, [Entry(1, i, data=PAYLOAD) for i in range(lo, lo + batch)])
            written += batch

    started = time.perf_counter()
    await asyncio.gather(*(writer() for _ in range(writers)))
    elapsed = time.perf_counter() - started
    await storage.close()
    fsyncs.sort()
    p50 = fsyncs[len(fsyncs) // 2] * 1000
    p99 = fsyncs[int(len(fsyncs) * 0.99)] * 1000
    return (
        f"writers={writers:4d} batch={batch:4d}: {len(fsyncs) / elapsed:7.0f} fsync/s "
        f"{written / elapsed:9.0f} entries/s  fsync p50={p50:.2f}ms p99={p99:.2f}ms"
    )


async def main(root: Path, seconds: float) -> None:
    for number, (writers, batch) in enumerate([(1, 1), (16, 1), (256, 1), (1, 100), (4, 500)]):
        print(await scenario(root / f"run{number}", writers, batch, seconds), flush=True)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(dir=sys.argv[1] if len(sys.argv) > 1 else None) as tmp:
        asyncio.run(main(Path(tmp), float(sys.argv[2]) if len(sys.argv) > 2 else 3.0))
