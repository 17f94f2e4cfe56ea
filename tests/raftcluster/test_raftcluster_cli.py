"""The console script and the handler registration."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import kopf
import pytest
import yaml

from raftpod_operator import handlers
from raftpod_operator.cli import build_parser
from raftpod_operator.crd import crd_manifest

BIN = Path(sys.executable).parent / "raftpod-operator"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN), *args], capture_output=True, text=True, timeout=60, check=False, env=env
    )


def _env_without_cluster(home: Path, kubeconfig: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
    return {**env, "HOME": str(home), "KUBECONFIG": str(kubeconfig)}


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


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--metrics-port", "-1"], "--metrics-port: expected a port from 0 to 65535, got '-1'"),
        (["--metrics-port", "70000"], "expected a port from 0 to 65535"),
        (["--liveness", "bogus"], "--liveness: expected http://host:port/path"),
        (["--liveness", "http://0.0.0.0/healthz"], "expected http://host:port/path"),
    ],
)
def test_bad_run_flags_exit_2_naming_the_flag(flags: list[str], says: str) -> None:
    done = run("run", *flags)
    assert done.returncode == 2
    assert says in done.stderr and "Traceback" not in done.stderr


def test_run_without_a_kubernetes_configuration_exits_2_and_says_what_to_do(
    tmp_path: Path,
) -> None:
    # kopf retried this once a minute, for ever, with a traceback each time
    done = run("run", "--metrics-port", "0", env=_env_without_cluster(tmp_path, tmp_path / "x"))
    assert done.returncode == 2
    assert "raftpod-operator run: error: no Kubernetes API to talk to" in done.stderr
    assert "KUBECONFIG" in done.stderr


def test_a_taken_metrics_port_exits_2_naming_it(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = _env_without_cluster(tmp_path, kubeconfig)
        done = run("run", "--standalone", "--metrics-port", str(port), env=env)
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"--metrics-port {port}: cannot listen: Address already in use" in done.stderr
