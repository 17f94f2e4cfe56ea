"""Property tests: the machine against a plain-dict model of the same etcd-like semantics.

Random commands (with sessions, retries, garbage bytes and snapshot/restore
at random points) must give the same results and the same state as the model.
The model is written the simple way (scans instead of indexes) on purpose.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from raftpod_sidecar.state.commands import (
    Command,
    Compare,
    CompareOp,
    CompareTarget,
    Delete,
    Get,
    LeaseGrant,
    LeaseRevoke,
    LogAppend,
    Put,
    Range,
    Txn,
    TxnOp,
)
from raftpod_sidecar.state.machine import Result, StateMachine

from .feeder import Feeder

KEYS = ["a", "a/1", "a/2", "b", "b/1"]
keys = st.sampled_from(KEYS)
values = st.binary(max_size=3)
leases = st.integers(0, 12)  # lease ids are grant indexes: small ones exist sometimes
revisions = st.none() | st.integers(0, 12)

puts = st.builds(Put, keys, values, leases, revisions)
deletes = st.builds(Delete, keys, revisions)
compares = st.one_of(
    st.builds(Compare, st.just(CompareTarget.VALUE), st.sampled_from(CompareOp), keys, values),
    st.builds(
        Compare,
        st.sampled_from([t for t in CompareTarget if t != CompareTarget.VALUE]),
        st.sampled_from(CompareOp),
        keys,
        st.integers(0, 6),
    ),
)
txn_ops = st.one_of(
    st.builds(Put, keys, values, leases, st.none()),
    st.builds(Delete, keys, st.none()),
    st.builds(Get, keys),
    st.builds(Range, st.sampled_from(["", "a", "a/", "b/", "z"]), st.integers(0, 3)),
)


def _one_write_per_key(ops: list[TxnOp]) -> tuple[TxnOp, ...]:
    written: set[str] = set()
    kept: list[TxnOp] = []
    for op in ops:
        if isinstance(op, Put | Delete):
            if op.key in written:
                continue
            written.add(op.key)
        kept.append(op)
    return tuple(kept)


op_lists = st.lists(txn_ops, max_size=4).map(_one_write_per_key)
txns = st.builds(Txn, st.lists(compares, max_size=2).map(tuple), op_lists, op_lists)
commands: st.SearchStrategy[Command] = st.one_of(
    puts,
    deletes,
    txns,
    st.builds(LeaseGrant, st.integers(1, 100)),
    st.builds(LeaseRevoke, st.integers(1, 12)),
    st.builds(LogAppend, values),
)


class Model:
    """etcd-like semantics in the most direct form."""

    def __init__(self) -> None:
        self.revision = 0
        self.kv: dict[str, tuple[bytes, int, int, int, int]] = {}  # value, create, mod, ver, lease
        self.leases: dict[int, int] = {}
        self.log: list[tuple[int, int, bytes]] = []

    def apply(self, cmd: Command, index: int, term: int) -> Result:
        if isinstance(cmd, Put | Delete) and cmd.prev_revision is not None:
            mod = self.kv[cmd.key][2] if cmd.key in self.kv else 0
            if mod != cmd.prev_revision:
                return {
                    "error": "compare_failed",
                    "index": index,
                    "revision": self.revision,
                    "mod_revision": mod,
                }
        if isinstance(cmd, Put):
            return self._txn(Txn((), (cmd,)), index, single=True)
        if isinstance(cmd, Delete):
            result = self._txn(Txn((), (cmd,)), index)
            return {"revision": result["revision"], "index": index, **result["results"][0]}
        if isinstance(cmd, Txn):
            return self._txn(cmd, index)
        if isinstance(cmd, LeaseGrant):
            self.leases[index] = cmd.ttl
            return {"id": index, "ttl": cmd.ttl, "revision": self.revision, "index": index}
        if isinstance(cmd, LeaseRevoke):
            if cmd.lease_id not in self.leases:
                return {"error": "lease_not_found", "index": index, "revision": self.revision}
            del self.leases[cmd.lease_id]
            doomed = [k for k, v in self.kv.items() if v[4] == cmd.lease_id]
            for key in doomed:
                del self.kv[key]
            self.revision += bool(doomed)
            return {"revision": self.revision, "index": index, "deleted": len(doomed)}
        self.log.append((index, term, cmd.data))
        return {"index": index, "term": term}

    def _item(self, key: str) -> dict[str, Any]:
        value, create, mod, version, lease = self.kv[key]
        return {
            "key": key,
            "value": value,
            "create_revision": create,
            "mod_revision": mod,
            "version": version,
            "lease": lease,
        }

    def _holds(self, c: Compare) -> bool:
        if c.key not in self.kv:
            if c.target == CompareTarget.VALUE:
                return False
            actual: Any = 0
        else:
            value, create, mod, version, lease = self.kv[c.key]
            actual = {
                CompareTarget.VALUE: value,
                CompareTarget.VERSION: version,
                CompareTarget.CREATE_REVISION: create,
                CompareTarget.MOD_REVISION: mod,
                CompareTarget.LEASE: lease,
            }[c.target]
        if c.op == CompareOp.EQUAL:
            return bool(actual == c.value)
        if c.op == CompareOp.NOT_EQUAL:
            return bool(actual != c.value)
        if c.op == CompareOp.LESS:
            return bool(actual < c.value)
        return bool(actual > c.value)

    def _txn(self, cmd: Txn, index: int, *, single: bool = False) -> Result:
        ok = all(self._holds(c) for c in cmd.compare)
        ops = cmd.success if ok else cmd.failure
        for op in ops:
            if isinstance(op, Put) and op.lease and op.lease not in self.leases:
                return {"error": "lease_not_found", "index": index, "revision": self.revision}
        rev = self.revision + 1
        wrote = False
        results: list[Result] = []
        for op in ops:
            if isinstance(op, Put):
                old = self.kv.get(op.key)
                create, version = (rev, 1) if old is None else (old[1], old[3] + 1)
                self.kv[op.key] = (op.value, create, rev, version, op.lease)
                results.append({"revision": rev})
                wrote = True
            elif isinstance(op, Delete):
                existed = self.kv.pop(op.key, None) is not None
                wrote = wrote or existed
                results.append({"deleted": int(existed)})
            elif isinstance(op, Get):
                results.append({"kv": self._item(op.key) if op.key in self.kv else None})
            else:
                found = sorted(k for k in self.kv if k.startswith(op.prefix))
                shown = found[: op.limit] if op.limit else found
                more = len(shown) < len(found)
                results.append({"items": [self._item(k) for k in shown], "more": more})
        self.revision = rev if wrote else self.revision
        if single:
            return {"revision": self.revision, "index": index}
        return {"succeeded": ok, "revision": self.revision, "index": index, "results": results}


def without_message(result: Result | None) -> Result | None:
    if result is None or "message" not in result:
        return result
    return {k: v for k, v in result.items() if k != "message"}


class MachineVsModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.feed = Feeder()
        self.model = Model()
        self.sent: list[tuple[str, Command, Result | None]] = []

    def _check(self, cmd: Command, client: str = "") -> None:
        index = self.feed.sm.applied_index + 1
        applied = self.feed(cmd, client=client, seq=1 if client else 0)
        expected = self.model.apply(cmd, index, self.feed.term)
        assert without_message(applied.result) == expected
        if client:
            self.sent.append((client, cmd, applied.result))

    @rule(cmd=commands, session=st.booleans())
    def apply(self, cmd: Command, session: bool) -> None:
        self._check(cmd, f"req-{len(self.sent)}" if session else "")

    @rule(ttl=st.integers(1, 60), data=st.data())
    def grant_then_use(self, ttl: int, data: st.DataObject) -> None:
        self._check(LeaseGrant(ttl))
        lease = self.feed.sm.applied_index
        self._check(Put(data.draw(keys), data.draw(values), lease))

    @rule(data=st.data())
    def retry(self, data: st.DataObject) -> None:
        if not self.sent:
            return
        client, cmd, original = data.draw(st.sampled_from(self.sent))
        before = self.feed.sm.snapshot()
        applied = self.feed(cmd, client=client, seq=1)
        assert applied.result == original
        assert applied.events == ()
        after = StateMachine()
        after.restore(before)
        after.applied_index = self.feed.sm.applied_index
        assert after.snapshot() == self.feed.sm.snapshot()

    @rule(data=st.binary(max_size=8))
    def garbage(self, data: bytes) -> None:
        applied = self.feed.raw(b"\x95" + data)  # an array header with junk after it
        assert applied.result is not None
        assert applied.result["error"] == "invalid_command"

    @rule()
    def snapshot_and_restore(self) -> None:
        blob = self.feed.sm.snapshot()
        restored = StateMachine()
        restored.restore(blob)
        assert restored.snapshot() == blob
        assert restored.applied_index == self.feed.sm.applied_index
        self.feed.sm = restored

    @invariant()
    def same_state(self) -> None:
        sm, model = self.feed.sm, self.model
        assert sm.kv.revision == model.revision
        keys, values, _ = sm.kv.range("")
        stored = [(k, tuple(v)) for k, v in zip(keys, values, strict=True)]
        assert stored == sorted(model.kv.items())
        assert sm.leases.ttls() == model.leases
        for lease_id in model.leases:
            bound = sorted(k for k, v in model.kv.items() if v[4] == lease_id)
            assert sm.leases.keys(lease_id) == bound
        assert [tuple(r) for r in sm.oplog.log_since(1)] == model.log


MachineVsModel.TestCase.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
test_machine_matches_model = MachineVsModel.TestCase


@settings(max_examples=80, deadline=None)
@given(st.lists(commands, max_size=40), st.data())
def test_restored_copy_gives_identical_results(cmds: list[Command], data: st.DataObject) -> None:
    split = data.draw(st.integers(0, len(cmds)))
    original = Feeder()
    for cmd in cmds[:split]:
        original(cmd)
    copy = Feeder(StateMachine())
    copy.sm.restore(original.sm.snapshot())
    for cmd in cmds[split:]:
        assert copy(cmd) == original(cmd)
    assert copy.sm.snapshot() == original.sm.snapshot()


@given(st.lists(st.sampled_from([LeaseGrant(5), Put("k", b"v"), LogAppend(b"x")]), max_size=20))
def test_lease_ids_are_the_same_on_every_replica(cmds: list[Command]) -> None:
    replicas = [Feeder(), Feeder()]
    for cmd in cmds:
        results = [replica(cmd).result for replica in replicas]
        if isinstance(cmd, LeaseGrant):
            assert results[0] is not None
            assert results[1] is not None
            assert results[0]["id"] == results[1]["id"] == replicas[0].sm.applied_index
    grants = sum(isinstance(c, LeaseGrant) for c in cmds)
    assert len(replicas[0].sm.leases) == grants
    assert replicas[0].sm.leases.ttls() == replicas[1].sm.leases.ttls()
