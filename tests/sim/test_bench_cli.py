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
    header, row, wrote = capsys.readouterr().out.strip().splitlines()
    assert wrote == f"wrote {out}"
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


def test_cli_writes_no_file_unless_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli.main(["core", "--entries", "50"]) == 0
    assert list(tmp_path.iterdir()) == []
    assert "wrote" not in capsys.readouterr().out


def test_cli_rejects_a_negative_entry_size(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        cli.main(["core", "--entry-bytes", "-5"])
    assert caught.value.code == 2
    assert "--entry-bytes: must be at least 0, got -5" in capsys.readouterr().err


def test_cli_refuses_an_unwritable_json_path_before_it_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no-such-dir" / "core.json"
    with pytest.raises(SystemExit) as caught:
        # a run this long would outlast the test's timeout: the path is checked first
        cli.main(["core", "--entries", "100000000", "--json", str(missing)])
    assert caught.value.code == 2
    assert f"--json {missing}: No such file or directory" in capsys.readouterr().err
