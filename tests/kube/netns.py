"""One network namespace per pod, joined by a bridge the environment creates.

Each pod gets its own loopback and an address from a private /24 that only
exists on this bridge; the host reaches every pod through the bridge's
connected route. `ip netns exec` bind-mounts /etc/netns/<ns>/hosts over
/etc/hosts, which is how a pod resolves the DNS names a cluster would give it.
Every name created here carries the environment's tag, and `stop()` deletes it.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import secrets
import shutil
import subprocess
import threading
from pathlib import Path

NETNS_ETC = Path("/etc/netns")
RESOLV_CONF = "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n"
POOL = ipaddress.ip_network("10.213.0.0/16")
ALLOCATION_LOCK = Path("/run/raftpod-pod-network.lock")


def run_ip(*args: str) -> str:
    """Run one `ip` command; raise with its stderr on failure."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def _used_networks() -> list[ipaddress.IPv4Network]:
    nets = []
    for line in run_ip("-4", "route", "show", "table", "all").splitlines():
        first = line.split()[0] if line.split() else ""
        try:
            nets.append(ipaddress.IPv4Network(first, strict=False))
        except ValueError:
            continue
    return nets


def write_in_place(path: Path, text: str) -> None:
    """Rewrite a file keeping its inode, so existing bind mounts of it see the change."""
    with open(path, "a+", encoding="utf-8") as handle:
        handle.seek(0)
        if handle.read() == text:
            return
        handle.seek(0)
        handle.truncate()
        handle.write(text)


class PodNetwork:
    """A bridge with a free /24 from 10.213.0.0/16 and the pod namespaces on it."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.bridge = f"rpbr{tag}"
        self._lock = threading.Lock()
        self._sandboxes: dict[str, str] = {}  # netns name -> pod IP
        self._counter = 0
        # Environments of other test runs on this machine pick subnets too: choosing
        # one and claiming it (its route appears with the address) is one step.
        with open(ALLOCATION_LOCK, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            used = _used_networks()
            subnet = next(
                (s for s in POOL.subnets(new_prefix=24) if not any(s.overlaps(u) for u in used)),
                None,
            )
            if subnet is None:
                raise RuntimeError(f"no free /24 left in {POOL}")
            self.subnet = subnet
            hosts = list(subnet.hosts())
            self.gateway = str(hosts[0])
            self._free = [str(h) for h in hosts[1:]]
            run_ip("link", "add", self.bridge, "type", "bridge")
            try:
                run_ip("addr", "add", f"{self.gateway}/{subnet.prefixlen}", "dev", self.bridge)
                run_ip("link", "set", self.bridge, "up")
            except RuntimeError:
                run_ip("link", "del", self.bridge)
                raise

    @classmethod
    def create(cls, attempts: int = 5) -> PodNetwork:
        """A network with a fresh random tag (names must not clash with another env's)."""
        for attempt in range(attempts):
            try:
                return cls(secrets.token_hex(2))
            except RuntimeError:
                if attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")

    def add_sandbox(self, hostname: str) -> tuple[str, str]:
        """Create a namespace wired to the bridge; returns (netns name, pod IP).

        Its hosts file starts with the pod's own name (servers look themselves
        up at start); its resolv.conf points at the pod's own loopback, so a
        name missing from the hosts file fails at once instead of timing out.
        """
        with self._lock:
            self._counter += 1
            index = self._counter
            ip = self._free.pop(0)
        ns, veth = f"rp{self.tag}-{index}", f"rpv{self.tag}{index}"
        run_ip("netns", "add", ns)
        with self._lock:
            self._sandboxes[ns] = ip
        run_ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
        run_ip("link", "set", veth, "master", self.bridge, "up")
        run_ip("-n", ns, "addr", "add", f"{ip}/{self.subnet.prefixlen}", "dev", "eth0")
        run_ip("-n", ns, "link", "set", "lo", "up")
        run_ip("-n", ns, "link", "set", "eth0", "up")
        run_ip("-n", ns, "route", "add", "default", "via", self.gateway)
        (NETNS_ETC / ns).mkdir(parents=True, exist_ok=True)
        write_in_place(NETNS_ETC / ns / "hosts", f"127.0.0.1\tlocalhost\n{ip}\t{hostname}\n")
        write_in_place(NETNS_ETC / ns / "resolv.conf", RESOLV_CONF)
        return ns, ip

    def hosts_path(self, ns: str) -> Path:
        return NETNS_ETC / ns / "hosts"

    def remove_sandbox(self, ns: str) -> None:
        """Delete the namespace (its veth pair goes with it) and its /etc/netns entry."""
        with self._lock:
            ip = self._sandboxes.pop(ns, None)
        if ip is None:
            return
        if os.path.exists(f"/run/netns/{ns}"):
            run_ip("netns", "del", ns)
        shutil.rmtree(NETNS_ETC / ns, ignore_errors=True)
        with self._lock:
            self._free.append(ip)

    def sandboxes(self) -> list[str]:
        with self._lock:
            return list(self._sandboxes)

    def stop(self) -> None:
        """Remove every namespace and the bridge."""
        for ns in self.sandboxes():
            self.remove_sandbox(ns)
        run_ip("link", "del", self.bridge)
        with contextlib.suppress(OSError):  # other namespaces may still use it
            NETNS_ETC.rmdir()
