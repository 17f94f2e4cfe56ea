"""raftpod's kopf operator: RaftCluster resources to healthy Raft clusters."""

__version__ = "0.1.0"
