"""``raftpod-bench core`` measures, prints a table and writes JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from raftpod_sidecar.bench import cli
from raftpod_sidecar.bench.core import run_core


def test_core_commits_every_entry() -> None:
    result = run_core(entries=500, entry_bytes=100, batch=32)
    assert result.entries == 500
    assert result.seconds > 0 and result.cpu_seconds > 0
    assert result.entries_per_second > 0 and result.cpu_seconds_per_entry > 0


def test_cli_prints_table_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "core.json"
    assert cli.main(["core", "--entries", "300", "--json", str(out)]) == 0
    header, row = capsys.readouterr().out.strip().splitlines()
    assert header.split() == [
        "benchmark",
        "nodes",
        "entry_bytes",
        "entries",
        "seconds",
        "entries_per_s",
        "cpu_s_per_entry",
    ]
    assert row.split()[:4] == ["core", "3", "100", "300"]
    [figures] = json.loads(out.read_text())
    assert figures["entries"] == 300 and figures["entries_per_s"] > 0


def test_cli_needs_a_subcommand() -> None:
    with pytest.raises(SystemExit) as caught:
        cli.main([])
    assert caught.value.code == 2


def test_cli_rejects_a_non_positive_count() -> None:
    with pytest.raises(SystemExit) as caught:
        cli.main(["core", "--entries", "0"])
    assert caught.value.code == 2
