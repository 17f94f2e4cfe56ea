"""raftpod's sidecar: a Raft node serving the app container over localhost."""

__version__ = "0.1.0"
