"""Property: any sequence of writes, compactions, snapshots and reopens matches MemoryStorage."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raftpod_sidecar.raft.messages import (
    ConfState,
    Entry,
    HardState,
    Member,
    Snapshot,
    SnapshotMeta,
)
from raftpod_sidecar.raft.storage import MemoryStorage
from raftpod_sidecar.storage import DurableStorage

CONF = ConfState((Member("n1", "a:1", True),))


def observe(s: MemoryStorage | DurableStorage) -> tuple[object, ...]:
    first, last = s.first_index(), s.last_index()
    return (
        s.initial_state(),
        first,
        last,
        [s.term(i) for i in range(first - 1, last + 1)],
        s.entries(first, last + 1, 1 << 30) if last >= first else [],
        s.snapshot(),
    )


async def run_steps(data: st.DataObject, path: Path) -> None:
    model = MemoryStorage()
    durable = DurableStorage.open(path, segment_bytes=400)
    term = 1
    for _ in range(data.draw(st.integers(1, 20), label="steps")):
        action = data.draw(
            st.sampled_from(["append", "append", "snap", "compact", "install", "reopen"])
        )
        if action == "append":
            # entries up to the snapshot are committed: a leader never replaces them
            floor = max(model.first_index(), model.snapshot().meta.index + 1)
            lo = data.draw(st.integers(floor, model.last_index() + 1))
            n = data.draw(st.integers(1, 12))
            term += data.draw(st.integers(0, 1))
            ents = [Entry(term, i, data=b"d%d" % i, client="c", seq=i) for i in range(lo, lo + n)]
            hs = HardState(term, data.draw(st.sampled_from(["", "n1", "n2"])), lo - 1)
            await durable.persist(hs, ents)
            model.append(ents)
            model.set_hard_state(hs)
        elif action == "snap" and model.last_index() > model.snapshot().meta.index:
            index = data.draw(st.integers(model.snapshot().meta.index + 1, model.last_index()))
            await durable.create_snapshot(index, CONF, b"s%d" % index)
            model.create_snapshot(index, CONF, b"s%d" % index)
        elif action == "compact" and model.snapshot().meta.index >= model.first_index():
            index = data.draw(st.integers(model.first_index(), model.snapshot().meta.index))
            await durable.compact(index)
            model.compact(index)
        elif action == "install":
            index = model.last_index() + data.draw(st.integers(-2, 30))
            term += 1
            snap = Snapshot(SnapshotMeta(index, term, CONF), b"i%d" % index)
            await durable.persist(snapshot=snap)
            model.apply_snapshot(snap)
        elif action == "reopen":
            await durable.close()
            durable = DurableStorage.open(path, segment_bytes=400)
        assert observe(durable) == observe(model)
    await durable.close()
    reopened = DurableStorage.open(path)
    assert observe(reopened) == observe(model)
    await reopened.close()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_durable_storage_agrees_with_memory_storage(data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run_steps(data, Path(tmp)))
