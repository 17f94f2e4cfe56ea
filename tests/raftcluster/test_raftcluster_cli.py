"""The console script and the handler registration."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import kopf
import yaml

from raftpod_operator import handlers
from raftpod_operator.cli import build_parser
from raftpod_operator.crd import crd_manifest

BIN = Path(sys.executable).parent / "raftpod-operator"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN), *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_entry_point_help_and_crd() -> None:
    helped = run("--help")
    assert helped.returncode == 0
    assert "run" in helped.stdout and "crd" in helped.stdout
    printed = run("crd")
    assert printed.returncode == 0
    assert yaml.safe_load(printed.stdout) == crd_manifest()


def test_run_flags() -> None:
    args = build_parser().parse_args(
        [
            "run",
            "-n",
            "a",
            "-n",
            "b",
            "--peering",
            "raftpod",
            "--liveness",
            "http://0.0.0.0:8080/healthz",
        ]
    )
    assert args.namespace == ["a", "b"]
    assert args.peering == "raftpod"
    assert args.metrics_port == 9090
    standalone = build_parser().parse_args(["run", "--standalone", "-A"])
    assert standalone.standalone and standalone.all_namespaces


def test_register_puts_every_handler_on_the_given_registry() -> None:
    registry = kopf.OperatorRegistry()
    handlers.register(registry)
    resource = kopf.Resource("raftpod.io", "v1alpha1", "raftclusters")
    changing = registry._changing.get_all_handlers()
    spawning = registry._spawning.get_all_handlers()
    assert {h.fn for h in changing} == {handlers.reconcile, handlers.cleanup_volumes}
    assert [h.fn for h in spawning] == [handlers.observe_and_act]
    assert all(h.selector is not None and h.selector.check(resource) for h in changing)
