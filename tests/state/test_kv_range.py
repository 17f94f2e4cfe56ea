"""Prefix ranges found by bisect at both ends agree with a plain scan, at any code point."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from raftpod_sidecar.state.kv import KVStore

# few distinct characters, including the highest code point, so prefixes often match
chars = st.sampled_from(["a", "b", "\x00", "\U0010ffff", "\U0010fffe"])
keys = st.text(chars, max_size=4)


@settings(max_examples=400)
@given(st.sets(keys, max_size=40), keys, st.integers(0, 5))
def test_range_matches_a_scan_of_every_key(stored: set[str], prefix: str, limit: int) -> None:
    kv = KVStore()
    for revision, key in enumerate(sorted(stored), start=1):
        kv.put(key, key.encode(), 0, revision)
    expected = sorted(k for k in stored if k.startswith(prefix))
    got, values, more = kv.range(prefix, limit)
    if limit:
        assert got == expected[:limit] and more == (len(expected) > limit)
    else:
        assert got == expected and not more
    assert [v.value for v in values] == [k.encode() for k in got]
