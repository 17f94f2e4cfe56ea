"""Deterministic simulation of the Raft core (FoundationDB / VOPR style): one seed, all faults."""
