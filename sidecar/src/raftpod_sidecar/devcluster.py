"""``raftpod-sidecar dev-cluster``: N node processes on loopback, for trying raftpod out.

Node ``i`` (1-based) is ``n<i>`` and uses three ports from ``--base-port P``:
peer ``P+10(i-1)``, app ``+1``, admin ``+2`` (they share 127.0.0.1, so ports
must differ). Data lives in ``DIR/n<i>``, so a second run resumes the same
cluster. The sample ``curl`` lines are printed once every node answers
``/readyz`` (a leader is known and it has caught up), so they work when they
appear. Ctrl-C or SIGTERM is forwarded to every node, which then shut down
cleanly; the command waits for them. A node that dies is reported and not
restarted, and makes the command's exit status 1. Flags after ``--`` are passed
to every node.
"""

from __future__ import annotations

import argparse
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from .storage.durable import WAL_DIR

PORT_STRIDE = 10
STOP_GRACE_SECONDS = 10.0
POLL_SECONDS = 0.2
READY_WAIT_SECONDS = 60.0


def node_ports(base: int, index: int) -> tuple[int, int, int]:
    """Peer, app and admin ports of node ``index`` (1-based)."""
    peer = base + PORT_STRIDE * (index - 1)
    return peer, peer + 1, peer + 2


def node_ready(admin_url: str, timeout: float = 1.0) -> bool:
    """Whether the node's admin listener answers ``/readyz`` with 200 just now."""
    try:
        with urllib.request.urlopen(f"{admin_url}/readyz", timeout=timeout) as answer:
            return bool(answer.status == 200)
    except (OSError, ValueError):  # refused, 503 (HTTPError), timed out, HTTPS only
        return False


def port_free(host: str, port: int) -> bool:
    """Whether a server could bind ``host:port`` just now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def taken_ports(nodes: int, base_port: int, host: str) -> list[str]:
    """The nodes' ports something else already holds, named for the error message."""
    taken = []
    for i in range(1, nodes + 1):
        for role, port in zip(("peer", "app", "admin"), node_ports(base_port, i), strict=True):
            if not port_free(host, port):
                taken.append(f"{host}:{port} (n{i} {role})")
    return taken


def existing_nodes(data_dir: Path) -> list[str]:
    """Node names with data under ``data_dir`` (a WAL), in order."""
    if not data_dir.is_dir():
        return []
    found = [
        d.name for d in data_dir.iterdir() if d.name.startswith("n") and (d / WAL_DIR).is_dir()
    ]
    return sorted(found, key=lambda name: (len(name), name))


def node_commands(
    nodes: int, data_dir: Path, base_port: int, host: str, extra: Sequence[str]
) -> list[list[str]]:
    peers = ",".join(f"n{i}={host}:{node_ports(base_port, i)[0]}" for i in range(1, nodes + 1))
    commands = []
    for i in range(1, nodes + 1):
        peer, app, admin = node_ports(base_port, i)
        commands.append(
            [
                sys.executable,
                "-m",
                "raftpod_sidecar.cli",
                "--id",
                f"n{i}",
                "--data-dir",
                str(data_dir / f"n{i}"),
                "--peer-listen",
                f"{host}:{peer}",
                "--api-listen",
                f"{host}:{app}",
                "--admin-listen",
                f"{host}:{admin}",
                "--advertise-admin",
                f"http://{host}:{admin}",
                "--peers",
                peers,
                *extra,
            ]
        )
    return commands


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="raftpod-sidecar dev-cluster",
        description="Start a local cluster of separate node processes on loopback.",
    )
    parser.add_argument("--nodes", type=int, default=3, help="number of voters (default 3)")
    parser.add_argument("--data-dir", required=True, help="parent directory for node data")
    parser.add_argument("--base-port", type=int, default=7000, help="first port (default 7000)")
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    return parser


def _announce_ready(host: str, base_port: int, nodes: int, *, waited: float) -> bool:
    """Print the sample commands once every node is ready, or the wait is over; done?"""
    admins = (f"http://{host}:{node_ports(base_port, i)[2]}" for i in range(1, nodes + 1))
    if all(node_ready(url) for url in admins):
        print(f"all {nodes} nodes ready in {waited:.1f} s", flush=True)
    elif waited > READY_WAIT_SECONDS:
        print(
            f"dev-cluster: not every node answered /readyz over HTTP within"
            f" {READY_WAIT_SECONDS:.0f} s; their logs above say why",
            flush=True,
        )
    else:
        return False
    _, app1, admin1 = node_ports(base_port, 1)
    print(
        f"try:  curl -X PUT --data-binary hello http://{host}:{app1}/v1/kv/greeting\n"
        f"      curl http://{host}:{app1}/v1/kv/greeting\n"
        f"      curl http://{host}:{admin1}/admin/status\n"
        "Ctrl-C stops all nodes.",
        flush=True,
    )
    return True


def main(argv: Sequence[str]) -> int:
    args_list = list(argv)
    extra: list[str] = []
    if "--" in args_list:
        cut = args_list.index("--")
        args_list, extra = args_list[:cut], args_list[cut + 1 :]
    args = _parser().parse_args(args_list)
    if not 1 <= args.nodes <= 9:
        print("dev-cluster: error: --nodes must be between 1 and 9", file=sys.stderr)
        return 2
    if not 1024 <= args.base_port <= 65535 - PORT_STRIDE * args.nodes:
        print(
            "dev-cluster: error: --base-port leaves no room for the nodes' ports", file=sys.stderr
        )
        return 2
    taken = taken_ports(args.nodes, args.base_port, args.host)
    if taken:
        print(
            f"dev-cluster: error: already in use: {', '.join(taken)}; stop what holds them"
            " (an earlier dev-cluster?) or pass another --base-port",
            file=sys.stderr,
        )
        return 2
    data_dir = Path(args.data_dir).resolve()
    found = existing_nodes(data_dir)
    if found and found != [f"n{i}" for i in range(1, args.nodes + 1)]:
        # new nodes would bootstrap a different membership and never be let in
        print(
            f"dev-cluster: error: {data_dir} holds a cluster of {', '.join(found)};"
            f" run it with --nodes {len(found)}, or give another --data-dir for"
            f" {args.nodes} nodes (members of a running cluster change through the"
            " admin API)",
            file=sys.stderr,
        )
        return 2
    data_dir.mkdir(parents=True, exist_ok=True)
    stopping = False

    def request_stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    commands = node_commands(args.nodes, data_dir, args.base_port, args.host, extra)
    procs = [subprocess.Popen(command) for command in commands]
    print(f"raftpod dev-cluster: {args.nodes} nodes, data under {data_dir}", flush=True)
    for i in range(1, args.nodes + 1):
        _, app, admin = node_ports(args.base_port, i)
        print(
            f"  n{i}: app http://{args.host}:{app}  admin http://{args.host}:{admin}"
            f"  (pid {procs[i - 1].pid})",
            flush=True,
        )
    started = time.monotonic()
    waiting = True  # for every node to be ready, before the sample commands
    exited: dict[int, int] = {}  # nodes that stopped on their own, by number

    def report_exits() -> None:
        for i, proc in enumerate(procs, start=1):
            if proc.poll() is not None and i not in exited:
                exited[i] = proc.returncode
                print(f"dev-cluster: n{i} exited with status {proc.returncode}", flush=True)

    while not stopping and any(p.poll() is None for p in procs):
        report_exits()
        if waiting and not exited:
            waited = time.monotonic() - started
            waiting = not _announce_ready(args.host, args.base_port, args.nodes, waited=waited)
        time.sleep(POLL_SECONDS)
    report_exits()
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for proc in procs:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    print("dev-cluster: all nodes stopped", flush=True)
    return 1 if any(exited.values()) else 0
