"""``confchange``: the pure ``apply_change`` every caller uses, and the payload codec."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raftpod_sidecar.raft.confchange import apply_change, decode_conf_change, encode_conf_change
from raftpod_sidecar.raft.errors import InvalidConfChangeError
from raftpod_sidecar.raft.messages import ConfChange, ConfChangeType, ConfState, Member

ADD, PROMOTE, REMOVE = ConfChangeType.ADD_LEARNER, ConfChangeType.PROMOTE, ConfChangeType.REMOVE
BASE = ConfState((Member("n1", "a1", True), Member("n3", "a3", True)))


def test_add_promote_remove_keeps_members_sorted_with_addresses() -> None:
    conf = apply_change(BASE, ConfChange(ADD, "n2", "a2"))
    assert conf.ids() == ("n1", "n2", "n3") and conf.learners() == ("n2",)
    assert conf.get("n2") == Member("n2", "a2", False)
    conf = apply_change(conf, ConfChange(PROMOTE, "n2"))
    assert conf.voters() == ("n1", "n2", "n3") and conf.get("n2") == Member("n2", "a2", True)
    conf = apply_change(conf, ConfChange(REMOVE, "n1"))
    assert conf.voters() == ("n2", "n3")


@pytest.mark.parametrize(
    "cc",
    [
        ConfChange(ADD, "n1", "x"),  # already a member
        ConfChange(PROMOTE, "n1"),  # already a voter
        ConfChange(PROMOTE, "n9"),  # unknown
        ConfChange(REMOVE, "n9"),  # unknown
        ConfChange(ADD, "", "x"),  # no id
    ],
)
def test_invalid_changes_raise(cc: ConfChange) -> None:
    with pytest.raises(InvalidConfChangeError):
        apply_change(BASE, cc)


def test_last_voter_cannot_be_removed() -> None:
    single = ConfState((Member("n1", "a", True), Member("n2", "b", False)))
    with pytest.raises(InvalidConfChangeError):
        apply_change(single, ConfChange(REMOVE, "n1"))
    assert apply_change(single, ConfChange(REMOVE, "n2")).ids() == ("n1",)


@settings(deadline=None)
@given(st.sampled_from(list(ConfChangeType)), st.text(min_size=1), st.text())
def test_codec_round_trips(kind: ConfChangeType, node_id: str, address: str) -> None:
    cc = ConfChange(kind, node_id, address)
    assert decode_conf_change(encode_conf_change(cc)) == cc


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xc1",
        msgpack.packb([9, "a", "b"]),
        msgpack.packb([0, 1, "b"]),
        msgpack.packb([0, "a"]),
        msgpack.packb(5),
        msgpack.packb([0, "a", "b"]) + b"\x00",
    ],
)
def test_malformed_payloads_raise_value_error(data: bytes) -> None:
    with pytest.raises(ValueError):
        decode_conf_change(data)
