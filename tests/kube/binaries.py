"""Where the Go binaries built by scripts/testbin are.

An explicit RAFTPOD_<NAME> environment variable wins; otherwise the path that
`scripts/testbin env` reports for the cache is used.
"""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

ENV_VARS = {
    "etcd": "RAFTPOD_ETCD",
    "kube-apiserver": "RAFTPOD_KUBE_APISERVER",
    "kube-controller-manager": "RAFTPOD_KUBE_CONTROLLER_MANAGER",
    "kube-scheduler": "RAFTPOD_KUBE_SCHEDULER",
    "kubectl": "RAFTPOD_KUBECTL",
    "helm": "RAFTPOD_HELM",
    "versitygw": "RAFTPOD_S3_SERVER",
    "porcupine-check": "RAFTPOD_PORCUPINE",
}

CONTROL_PLANE = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")


@functools.cache
def _testbin_env() -> dict[str, str]:
    out = subprocess.run(
        [str(REPO_ROOT / "scripts" / "testbin"), "env"],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    found: dict[str, str] = {}
    for line in out.splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        found[key] = value
    return found


def binary(name: str) -> Path:
    """The path of binary `name` (it may not exist yet)."""
    var = ENV_VARS[name]
    return Path(os.environ.get(var) or _testbin_env()[var])


def missing(names: tuple[str, ...] = CONTROL_PLANE) -> list[str]:
    """Names among `names` whose binary is absent or not executable."""
    return [n for n in names if not os.access(binary(n), os.X_OK)]
