"""The benchmark's raftpod nodes start from cached bytecode, as they do from the image."""

from __future__ import annotations

from pathlib import Path

import pytest

from raftpod_sidecar.bench.clusters import RaftpodCluster


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_nodes_cache_bytecode_even_where_the_environment_forbids_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    with RaftpodCluster(tmp_path) as cluster:
        cluster.start()
        compiled = {p.name.split(".")[0] for p in (tmp_path / "pycache").rglob("*.pyc")}
    # written by the nodes (this process caches bytecode elsewhere, if at all)
    assert {"server", "api_app", "durable"} <= compiled
