"""Real processes, real fsync: SIGKILL a writer at random moments, nothing acked is lost."""

from __future__ import annotations

import os
import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from raftpod_sidecar.storage import DurableStorage

WRITER = Path(__file__).with_name("crash_writer.py")
KILLS = 10
LINE_TIMEOUT = 20.0


def expected_payload(index: int) -> bytes:
    return (b"%08d" % index) * 12 + b"\n" * 4


class LineReader:
    """Reads a child's stdout line by line, each read bounded by a deadline."""

    def __init__(self, child: subprocess.Popen[bytes]) -> None:
        assert child.stdout is not None
        self.fd = child.stdout.fileno()
        self.buffer = b""

    def readline(self) -> bytes:
        """The next line, or b"" at end of file."""
        deadline = time.monotonic() + LINE_TIMEOUT
        while b"\n" not in self.buffer:
            remaining = deadline - time.monotonic()
            readable, _, _ = select.select([self.fd], [], [], max(remaining, 0))
            assert readable, "no output from the writer before the deadline"
            chunk = os.read(self.fd, 65536)
            if not chunk:
                line, self.buffer = self.buffer, b""
                return line
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line + b"\n"


def run_until_killed(data_dir: Path, seed: int, acks_before_kill: int) -> int:
    """Start a writer, SIGKILL it after some acks; returns the highest acknowledged index."""
    with subprocess.Popen(
        [sys.executable, str(WRITER), str(data_dir), str(seed)], stdout=subprocess.PIPE
    ) as child:
        try:
            lines = LineReader(child)
            ready = lines.readline()
            assert ready.startswith(b"ready "), ready
            acked = int(ready.split()[1])
            for _ in range(acks_before_kill):
                line = lines.readline()
                assert line, "writer exited early"
                acked = max(acked, int(line))
            child.send_signal(signal.SIGKILL)
            # lines printed before the kill landed were acknowledged too
            while line := lines.readline():
                acked = max(acked, int(line))
        finally:
            child.kill()
            child.wait(LINE_TIMEOUT)
    assert child.returncode == -signal.SIGKILL
    return acked


async def check_acknowledged(data_dir: Path, acked: int) -> int:
    """Every entry up to ``acked`` is there and intact; returns the first stored index."""
    storage = DurableStorage.open(data_dir)
    try:
        assert storage.last_index() >= acked
        first = storage.first_index()
        assert storage.snapshot().meta.index >= first - 1
        for index in range(first, storage.last_index() + 1):
            (entry,) = storage.entries(index, index + 1, 1 << 20)
            assert entry.index == index
            assert entry.data == expected_payload(index)
        assert storage.hard_state.term == 1
        return first
    finally:
        await storage.close()


async def test_acknowledged_entries_survive_sigkill(tmp_path: Path) -> None:
    rng = random.Random(20261126)
    acked = 0
    for kill in range(KILLS):
        acked = run_until_killed(tmp_path, kill, rng.randint(1, 120))
        first = await check_acknowledged(tmp_path, acked)
    assert acked > KILLS  # the writer really made progress across restarts
    assert first > 1  # and compacted, so old segments were removed under kills too
