"""The Dockerfile's build stage, replayed without a container engine.

No image can be built here, so this runs the build stage's own steps on the
host: copy exactly what its COPY lines copy into a fresh context, create a
clean venv, ``pip install '.[fast]'`` (a real, non-editable install from
PyPI), then the stage's checks of both entry points. A file the package
needs but the install leaves out, or an import of the source tree, fails
here as it would fail the image.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INSTALL_TIMEOUT = 600


def copied_paths() -> list[str]:
    """The sources of the build stage's COPY lines (not the final stage's --from copies)."""
    text = (ROOT / "Dockerfile").read_text()
    stage = text.split("FROM ", 2)[1]
    paths: list[str] = []
    for line in stage.splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            *sources, _dest = line.split()[1:]
            paths += [s.rstrip("/") for s in sources]
    return paths


@pytest.mark.slow
def test_build_stage_installs_both_entry_points_from_a_clean_venv(tmp_path: Path) -> None:
    context = tmp_path / "src"
    context.mkdir()
    paths = copied_paths()
    assert {"pyproject.toml", "sidecar", "operator"} <= set(paths)
    for name in paths:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(
                source, context / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
            )
        else:
            shutil.copy2(source, context / name)
    venv = tmp_path / "opt-raftpod"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    install = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", ".[fast]"],
        cwd=context,
        env=env,
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT,
        check=False,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    # the stage's checks, run from elsewhere so nothing resolves to the source tree
    elsewhere = tmp_path / "run"
    elsewhere.mkdir()
    shutil.rmtree(context)
    version = subprocess.run(
        [str(venv / "bin" / "raftpod-operator"), "--version"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip(), "raftpod-operator --version printed nothing"
    sidecar = subprocess.run(
        [str(venv / "bin" / "raftpod-sidecar"), "--help"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert sidecar.returncode == 0, sidecar.stderr
    assert "--peers" in sidecar.stdout
    # the folder operator/ must never be installed as a top-level package `operator`
    installed = {p.name for p in venv.glob("lib/python*/site-packages/*")}
    assert {"raftpod_operator", "raftpod_sidecar"} <= installed
    assert "operator" not in installed
