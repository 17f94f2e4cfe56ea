"""``raftpod-bench``: throughput and cost measurements, one subcommand per benchmark."""
