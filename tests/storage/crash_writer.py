"""Child process for the crash test: appends under load, prints each acknowledged index.

Usage: ``python crash_writer.py DATA_DIR SEED``. Prints ``ready LAST`` after
recovery, then the last index of every batch only after ``persist`` returned,
so every printed index is a promise that it survives SIGKILL.
"""

from __future__ import annotations

import asyncio
import random
import sys
from pathlib import Path

from raftpod_sidecar.raft.messages import ConfState, Entry, HardState
from raftpod_sidecar.storage import DurableStorage

IN_FLIGHT = 4
SNAPSHOT_EVERY = 400
KEEP_AFTER_COMPACTION = 50
MAX_ENTRIES = 200_000


def payload(index: int) -> bytes:
    """The value stored at ``index``: 100 bytes the parent can recompute."""
    return (b"%08d" % index) * 12 + b"\n" * 4


async def main(data_dir: Path, seed: int) -> None:
    rng = random.Random(seed)
    storage = DurableStorage.open(data_dir, segment_bytes=64 << 10)
    next_index = storage.last_index() + 1
    print(f"ready {storage.last_index()}", flush=True)
    pending: list[asyncio.Task[None]] = []
    ends: list[int] = []
    snapshot_at = storage.snapshot().meta.index
    while next_index < MAX_ENTRIES:
        size = rng.randint(1, 40)
        batch = [Entry(1, i, data=payload(i)) for i in range(next_index, next_index + size)]
        next_index += size
        hard_state = HardState(1, "n1", batch[0].index - 1)
        pending.append(asyncio.create_task(storage.persist(hard_state, batch)))
        ends.append(batch[-1].index)
        if len(pending) >= IN_FLIGHT:
            await pending.pop(0)
            print(ends.pop(0), flush=True)
        durable = storage.last_index()
        if durable - snapshot_at >= SNAPSHOT_EVERY:
            await storage.create_snapshot(durable, ConfState(), b"upto %d" % durable)
            await storage.compact(durable - KEEP_AFTER_COMPACTION)
            snapshot_at = durable
    for task, end in zip(pending, ends, strict=True):
        await task
        print(end, flush=True)
    await storage.close()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2])))
