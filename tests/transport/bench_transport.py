"""Measure the transport (a script, not a test): codec cost and loopback throughput.

    .venv/bin/python tests/transport/bench_transport.py [--messages N] [--tls]

Prints encode+decode microseconds per message and messages/s between two
transports on 127.0.0.1, each message an APP carrying one 100-byte entry,
sent in bursts of 256 as the node driver would after one Ready.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from raftpod_sidecar.transport.codec import (
    decode_batch,
    decode_message,
    encode_message,
    join_encoded,
)
from raftpod_sidecar.transport.tls import TlsContexts
from transport.certs import make_ca, write_node_files
from transport.harness import Inbox, addr, app, start_node


def codec_cost(n: int) -> None:
    msgs = [app("n1", "n2", k) for k in range(n)]
    t0 = time.perf_counter()
    encoded = [encode_message(m) for m in msgs]
    t1 = time.perf_counter()
    for e in encoded:
        decode_message(e)
    t2 = time.perf_counter()
    decode_batch(join_encoded(encoded))
    t3 = time.perf_counter()
    print(
        f"encode {1e6 * (t1 - t0) / n:.2f} us/msg, decode {1e6 * (t2 - t1) / n:.2f} us/msg, "
        f"batched decode {1e6 * (t3 - t2) / n:.2f} us/msg ({len(encoded[0])} bytes/msg)"
    )


async def throughput(n: int, tls: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ctx: dict[str, TlsContexts | None] = {"a": None, "b": None}
        if tls:
            ca = make_ca()
            for i in ctx:
                ctx[i] = TlsContexts(write_node_files(Path(tmp) / i, ca, node_uri=i))
        inbox_a, inbox_b = Inbox(), Inbox()
        a = await start_node("a", inbox_a, tls=ctx["a"])
        b = await start_node("b", inbox_b, tls=ctx["b"])
        try:
            a.update_peers({"b": addr(b)})
            a.send([app("a", "b", 0)])
            await inbox_b.until(lambda: len(inbox_b.messages) == 1)
            burst = [app("a", "b", k) for k in range(256)]
            t0 = time.perf_counter()
            sent = 0
            while sent < n:
                a.send(burst)
                sent += len(burst)
                # Stay ahead of the receiver by a bounded amount, as Raft's inflight window does.
                target = 1 + sent - 4 * len(burst)
                await inbox_b.until(lambda t=target: len(inbox_b.messages) >= t, within=60)
            await inbox_b.until(lambda: len(inbox_b.messages) == sent + 1, within=60)
            dt = time.perf_counter() - t0
            c = a.counters
            print(
                f"{'mTLS' if tls else 'plain'}: {sent / dt:,.0f} messages/s "
                f"({sent} in {dt:.2f}s, {c.frames_out} frames, "
                f"{c.bytes_out / dt / 1e6:.1f} MB/s, dropped {c.dropped_full_queue})"
            )
        finally:
            await a.stop()
            await b.stop()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--messages", type=int, default=200_000)
    p.add_argument("--tls", action="store_true")
    args = p.parse_args()
    codec_cost(20_000)
    asyncio.run(throughput(args.messages, args.tls))


if __name__ == "__main__":
    main()
