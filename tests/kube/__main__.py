"""`python -m tests.kube up`: start the environment by hand, stop it on Ctrl-C."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from types import FrameType

from tests.kube.env import KubeEnv, unavailable_reason


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.kube")
    parser.add_argument("command", choices=["up"], help="start and wait for Ctrl-C")
    parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(threadName)s %(message)s")
    reason = unavailable_reason()
    if reason:
        print(f"cannot start: {reason}", file=sys.stderr)
        return 1
    done = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    env = KubeEnv.start()
    try:
        print(f"export KUBECONFIG={env.kubeconfig}", flush=True)
        print(f"pod network {env.network.subnet} on bridge {env.network.bridge}", flush=True)
        print(f"from the cluster network: KUBECONFIG={env.in_cluster_kubeconfig}", flush=True)
        print(f"logs under {env.root}; Ctrl-C stops everything", flush=True)
        done.wait()
    finally:
        print("stopping", flush=True)
        env.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
