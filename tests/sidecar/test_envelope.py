"""The snapshot envelope: the state machine's bytes and the admin-URL directory."""

from __future__ import annotations

import msgpack
import pytest

from raftpod_sidecar import envelope


@pytest.mark.parametrize("size", [0, 1, 255, 65_536, (1 << 20) - 1, (3 << 20) + 17])
def test_snapshot_envelope_round_trips_machine_bytes_of_any_size(size: int) -> None:
    machine = bytes(i % 251 for i in range(size))
    directory = {"n1": "https://10.0.0.1:7002", "n2": "https://10.0.0.2:7002"}
    for given in (machine, memoryview(machine)):
        data = envelope.pack_snapshot(given, directory)
        assert envelope.unpack_snapshot(data) == (machine, directory)
        # plain msgpack: what any reader of the format sees
        assert msgpack.unpackb(data) == {"v": 1, "machine": machine, "directory": directory}


def test_foreign_bytes_are_not_a_snapshot() -> None:
    with pytest.raises(envelope.EnvelopeError):
        envelope.unpack_snapshot(msgpack.packb([1, 2]))
