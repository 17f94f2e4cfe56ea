"""Golden interaction scripts: ``testdata/*.txt`` hold commands and their expected output.

Format (etcd's datadriven): a command line, ``----``, the output, a blank line.
Lines starting with ``#`` are comments. Run with ``--rewrite`` (or
``RAFTPOD_REWRITE=1``) to regenerate the expected output after a deliberate change.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from raft_env import Cluster

TESTDATA = Path(__file__).parent / "testdata"
SCRIPTS = sorted(TESTDATA.glob("*.txt"))


def parse(text: str) -> list[tuple[list[str], str, str]]:
    """(comment lines before, command, expected output) per block."""
    blocks: list[tuple[list[str], str, str]] = []
    lines = text.splitlines()
    i = 0
    comments: list[str] = []
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.strip() or line.startswith("#"):
            if line.startswith("#"):
                comments.append(line)
            continue
        if i >= len(lines) or lines[i] != "----":
            raise ValueError(f"line {i}: command {line!r} must be followed by ----")
        i += 1
        out: list[str] = []
        while i < len(lines) and lines[i].strip():
            out.append(lines[i])
            i += 1
        blocks.append((comments, line, "\n".join(out)))
        comments = []
    return blocks


def render(blocks: list[tuple[list[str], str, str]]) -> str:
    parts = []
    for comments, command, output in blocks:
        parts.append("\n".join([*comments, command, "----", output]))
    return "\n\n".join(parts) + "\n"


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_script(script: Path, request: pytest.FixtureRequest) -> None:
    rewrite = request.config.getoption("--rewrite", default=False)
    rewrite = rewrite or os.environ.get("RAFTPOD_REWRITE") == "1"
    blocks = parse(script.read_text())
    cluster = Cluster(seed=1)
    actual = [(c, cmd, cluster.run_command(cmd)) for c, cmd, _ in blocks]
    if rewrite:
        script.write_text(render(actual))
        return
    for (_, cmd, expected), (_, _, got) in zip(blocks, actual, strict=True):
        assert got == expected, f"{script.name}: {cmd!r}\n--- expected\n{expected}\n--- got\n{got}"


def test_at_least_eight_scripts() -> None:
    assert len(SCRIPTS) >= 8


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_rewrite_reproduces_unchanged_scripts(script: Path) -> None:
    text = script.read_text()
    assert render(parse(text)) == text
