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
from collections.abc import Sequence

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
        default=None,
        help="liveness endpoint, e.g. http://0.0.0.0:8080/healthz",
    )
    run.add_argument("--metrics-port", type=int, default=9090, help="Prometheus port, 0 to disable")
    run.add_argument("-v", "--verbose", action="store_true", help="log more")
    run.add_argument("--debug", action="store_true", help="log everything kopf does")
    commands.add_parser("crd", help="print the RaftCluster CRD YAML")
    return parser


def _priority(text: str) -> int:
    if text == "random":
        return secrets.randbelow(1_000_000) + 1
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or random, got {text!r}") from None


def _run(args: argparse.Namespace) -> int:
    import kopf
    from prometheus_client import CollectorRegistry, start_http_server

    from raftpod_operator import handlers
    from raftpod_operator.metrics import OperatorMetrics

    registry = kopf.OperatorRegistry()
    handlers.register(registry)
    metrics = OperatorMetrics(CollectorRegistry())
    if args.metrics_port:
        start_http_server(args.metrics_port, registry=metrics.registry)
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
