"""The sans-I/O Raft core: pure and deterministic, driven by ``tick``/``step``/``ready``."""
