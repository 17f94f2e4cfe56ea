"""Listening ports for the servers the tests start.

A port from binding port 0 and closing can come back from the kernel on the next
call, so two nodes of one cluster once got the same peer port (one of them never
started). Ports here are never handed out twice in a test run, and are drawn below
the kernel's ephemeral range, so no outgoing connection takes one before its
server binds it.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

LOWEST = 10_000
_handed_out: set[int] = set()
_rng = random.Random()


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports on 127.0.0.1 that nothing holds now and no earlier call gave."""
    high = max(_ephemeral_low(), LOWEST + 1_000)
    ports: list[int] = []
    for _ in range(count * 200):
        if len(ports) == count:
            break
        port = _rng.randrange(LOWEST, high)
        if port not in _handed_out and _bindable(port):
            _handed_out.add(port)
            ports.append(port)
    if len(ports) < count:
        raise RuntimeError(f"found only {len(ports)} of {count} free ports in {LOWEST}..{high}")
    return ports


def free_port() -> int:
    """One port, as ``free_ports``."""
    return free_ports(1)[0]
