"""The sidecar's replicated state machine: a small etcd-like KV store with
leases, watch history and an opaque command log, applied from Raft entries."""
