"""Which members a workload's clients talk to."""

from __future__ import annotations

from pathlib import Path

import pytest

from raftpod_sidecar.bench.clusters import Cluster, ClusterError, Member
from raftpod_sidecar.bench.workloads import PRESETS, client_endpoints


class LeaderKnownCluster(Cluster):
    """A test double: three members that are never started, led by ``leader``."""

    system = "raftpod"

    def __init__(self, leader: int | None) -> None:
        super().__init__(
            [
                Member(f"n{i}", [], f"http://127.0.0.1:{7000 + i}", Path("log"), Path("data"))
                for i in (1, 2, 3)
            ]
        )
        self.leader = leader

    def leader_index(self) -> int | None:
        return self.leader

    def wait_ready(self, timeout: float = 0.0) -> None:
        return


def test_all_members_in_turn_or_only_the_leader_or_a_follower() -> None:
    cluster = LeaderKnownCluster(leader=2)
    assert client_endpoints(cluster, "all") == (cluster.endpoints, None)
    assert client_endpoints(cluster, "leader") == (("http://127.0.0.1:7003",), "n3")
    assert client_endpoints(cluster, "follower") == (("http://127.0.0.1:7001",), "n1")


def test_no_leader_is_an_error_not_a_guess() -> None:
    with pytest.raises(ClusterError, match="no leader"):
        client_endpoints(LeaderKnownCluster(leader=None), "leader")


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_measures_a_lone_writer_both_ways(preset: str) -> None:
    members = {w.members for w in PRESETS[preset].workloads if w.clients == 1}
    assert members == {"leader", "follower"}
