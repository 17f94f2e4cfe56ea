"""``raftpod-operator``: run the operator (a wrapper around ``kopf run``) or print the CRD.

``raftpod-operator run`` picks the watched namespaces, peering (two replicas
with one active, or ``--standalone``), the liveness endpoint and the metrics
port; ``raftpod-operator crd`` prints the generated CRD YAML that ``crds/`` and
the Helm chart carry.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import urllib.parse
from collections.abc import Sequence
from typing import NoReturn

from raftpod_operator import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="raftpod-operator",
        description="The raftpod operator: RaftCluster resources to healthy Raft clusters.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the operator (wraps `kopf run`)")
    scope = run.add_mutually_exclusive_group()
    scope.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        metavar="NS",
        help="watch this namespace (repeatable; glob patterns as in kopf)",
    )
    scope.add_argument(
        "-A", "--all-namespaces", action="store_true", help="watch every namespace (default)"
    )
    peering = run.add_mutually_exclusive_group()
    peering.add_argument(
        "--peering",
        metavar="NAME",
        default=None,
        help="kopf peering object: only the highest-priority replica acts",
    )
    peering.add_argument(
        "--standalone", action="store_true", help="no peering: the only operator replica"
    )
    run.add_argument(
        "--priority",
        type=_priority,
        default="random",
        help="peering priority: an integer, or random (default) so that replicas differ "
        "(kopf freezes every replica when two share one)",
    )
    run.add_argument(
        "--liveness",
        metavar="URL",
        type=_liveness,
        default=None,
        help="liveness endpoint, e.g. http://0.0.0.0:8080/healthz",
    )
    run.add_argument(
        "--metrics-port", type=_port, default=9090, help="Prometheus port, 0 to disable"
    )
    run.add_argument("-v", "--verbose", action="store_true", help="log more")
    run.add_argument("--debug", action="store_true", help="log everything kopf does")
    commands.add_parser("crd", help="print the RaftCluster CRD YAML")
    return parser


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 0 to 65535, got {text!r}")
    return int(text)


def _liveness(text: str) -> str:
    url = urllib.parse.urlsplit(text)
    try:
        port = url.port
    except ValueError:
        port = None
    if url.scheme != "http" or not url.hostname or port is None:
        raise argparse.ArgumentTypeError(
            f"expected http://host:port/path, e.g. http://0.0.0.0:8080/healthz, got {text!r}"
        )
    return text


def _priority(text: str) -> int:
    if text == "random":
        return secrets.randbelow(1_000_000) + 1
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or random, got {text!r}") from None


def _fail(message: str) -> NoReturn:
    print(f"raftpod-operator run: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _run(args: argparse.Namespace) -> int:
    import kopf
    from kubernetes.config import ConfigException
    from prometheus_client import CollectorRegistry, start_http_server

    from raftpod_operator import handlers
    from raftpod_operator.kube import load_configuration
    from raftpod_operator.metrics import OperatorMetrics

    try:  # kopf would retry a missing configuration every minute, for ever
        load_configuration()
    except ConfigException as exc:
        _fail(
            f"no Kubernetes API to talk to ({exc}): run it in a pod with a service account,"
            " or point KUBECONFIG (or ~/.kube/config) at a cluster"
        )
    registry = kopf.OperatorRegistry()
    handlers.register(registry)
    metrics = OperatorMetrics(CollectorRegistry())
    if args.metrics_port:
        try:
            start_http_server(args.metrics_port, registry=metrics.registry)
        except OSError as exc:
            _fail(f"--metrics-port {args.metrics_port}: cannot listen: {exc.strerror or exc}")
    kopf.configure(verbose=args.verbose, debug=args.debug)
    kopf.run(
        registry=registry,
        clusterwide=not args.namespace,
        namespaces=args.namespace,
        standalone=args.standalone or None,
        peering_name=args.peering,
        priority=args.priority,
        liveness_endpoint=args.liveness,
        memo=kopf.Memo(metrics=metrics),
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "crd":
        from raftpod_operator.crd import crd_yaml

        sys.stdout.write(crd_yaml())
        return 0
    return _run(args)


if __name__ == "__main__":
    raise SystemExit(main())
