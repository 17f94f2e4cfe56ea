"""A TCP relay from the pod bridge to the API server on the host's loopback.

The API server listens on 127.0.0.1 only, which a process in another network
namespace cannot reach. In a cluster, pods and in-cluster operators reach it
at a cluster address; here that address is the bridge's gateway, and this
relay forwards each connection byte for byte (TLS passes through untouched,
the serving certificate names the gateway too).
"""

from __future__ import annotations

import contextlib
import socket
import threading

ACCEPT_POLL = 0.5
CHUNK = 65536


class TcpRelay:
    """Accept on (host, port) and pipe every connection to (target_host, target_port)."""

    def __init__(self, host: str, port: int, target_host: str, target_port: int) -> None:
        self.address = (host, port)
        self.target = (target_host, target_port)
        self._listener = socket.create_server(self.address)
        self._listener.settimeout(ACCEPT_POLL)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._accept = threading.Thread(target=self._accept_loop, name="relay-accept", daemon=True)
        self._accept.start()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed by stop()
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            client.settimeout(None)
            with self._lock:
                self._open.update((client, upstream))
                self._threads = [t for t in self._threads if t.is_alive()]
                for src, dst in ((client, upstream), (upstream, client)):
                    pump = threading.Thread(target=self._pump, args=(src, dst), daemon=True)
                    pump.start()
                    self._threads.append(pump)

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        """Copy until EOF or an error, then close both ends (the other pump ends too)."""
        try:
            while data := src.recv(CHUNK):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            with self._lock:
                for sock in (src, dst):
                    if sock in self._open:
                        self._open.discard(sock)
                        sock.close()

    @property
    def running(self) -> bool:
        """Whether it still accepts connections (its listening socket is open)."""
        return self._accept.is_alive() or self._listener.fileno() != -1

    def stop(self, timeout: float = 10.0) -> None:
        """Close the listener and every relayed connection; wait for the threads."""
        self._stop.set()
        self._listener.close()
        self._accept.join(timeout)
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout)
