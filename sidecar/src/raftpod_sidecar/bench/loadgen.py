"""The load generator: N concurrent HTTP clients in a process of their own.

It runs as ``python -m raftpod_sidecar.bench.loadgen JOB`` with a ``LoadJob``
as JSON in its one argument and prints a ``LoadResult`` as JSON on stdout, so it never shares
a core's time slice accounting with the servers and its own CPU use is
measured separately: a generator near 100% of a core is the bottleneck, not
the server. ``Generators`` splits one job's clients over one or more such
processes and merges what they measured.

Every client keeps one keep-alive connection (aiohttp's pool, unlimited size)
and issues requests back to back. A run stops at ``duration_s`` or after
``max_ops`` requests, whichever comes first; latencies of requests started in
the first ``warmup_s`` are not recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import aiohttp

from .histogram import LatencyHistogram
from .targets import Target, target_for

Operation = Literal["write", "read"]
KeyOrder = Literal["random", "sequential"]

KEY_PREFIX = "bench/k"
ERROR_PAUSE_SECONDS = 0.01  # after a failed request, so a dead endpoint is not hammered
STARTUP_SLACK_SECONDS = 20.0  # process start, imports, connection set-up, shutdown


@dataclass(frozen=True)
class LoadJob:
    """What one generator process does. ``client_offset`` numbers its clients globally."""

    system: str
    endpoints: tuple[str, ...]
    op: Operation
    clients: int
    duration_s: float
    max_ops: int
    value_bytes: int = 100
    keys: int = 1000
    read_mode: str = "linearizable"
    warmup_s: float = 0.0
    key_order: KeyOrder = "random"
    request_timeout_s: float = 5.0
    client_offset: int = 0
    seed: int = 1

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["endpoints"] = list(self.endpoints)
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> LoadJob:
        return cls(**{**doc, "endpoints": tuple(doc["endpoints"])})


@dataclass
class LoadResult:
    """What was measured. ``ops`` counts successes after the warm-up; errors count all."""

    ops: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    elapsed_s: float = 0.0
    cpu_s: float = 0.0
    processes: int = 1
    max_process_cpu: float = 0.0
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)

    @property
    def ops_per_s(self) -> float:
        return self.ops / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "ops": self.ops,
            "errors": dict(self.errors),
            "elapsed_s": self.elapsed_s,
            "cpu_s": self.cpu_s,
            "processes": self.processes,
            "max_process_cpu": self.max_process_cpu,
            "latency": self.latency.to_json(),
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> LoadResult:
        return cls(
            ops=doc["ops"],
            errors=Counter(doc["errors"]),
            elapsed_s=doc["elapsed_s"],
            cpu_s=doc["cpu_s"],
            processes=doc["processes"],
            max_process_cpu=doc["max_process_cpu"],
            latency=LatencyHistogram.from_json(doc["latency"]),
        )


def key_name(index: int) -> str:
    return f"{KEY_PREFIX}{index:06d}"


class _Run:
    """Shared state of one process's clients: the budget and what was measured."""

    def __init__(self, job: LoadJob) -> None:
        self.job = job
        self.target: Target = target_for(job.system)
        self.issued = 0
        self.result = LoadResult()
        now = time.perf_counter()
        self.measure_from = now + job.warmup_s
        self.deadline = now + job.warmup_s + job.duration_s
        self.last_done = self.measure_from

    def next_key(self, rng: random.Random) -> str | None:
        """The key of the next request, or None when the budget is spent."""
        if self.issued >= self.job.max_ops or time.perf_counter() >= self.deadline:
            return None
        index = self.issued if self.job.key_order == "sequential" else rng.randrange(self.job.keys)
        self.issued += 1
        return key_name(index % self.job.keys)

    async def client(self, session: aiohttp.ClientSession, number: int) -> None:
        job = self.job
        rng = random.Random(job.seed * 100_003 + number)
        endpoint = job.endpoints[number % len(job.endpoints)]
        value = rng.randbytes(job.value_bytes)
        while (key := self.next_key(rng)) is not None:
            if job.op == "write":
                call = self.target.put(endpoint, key, value)
            else:
                call = self.target.get(endpoint, key, job.read_mode)
            headers = {"Content-Type": call.content_type} if call.content_type else None
            started = time.perf_counter()
            error = ""
            try:
                async with session.request(
                    call.method, call.url, data=call.body or None, headers=headers
                ) as response:
                    await response.read()
                    if job.op == "write":
                        ok = response.status < 300
                    else:
                        ok = self.target.read_ok(response.status)
                    if not ok:
                        error = f"http_{response.status}"
            except TimeoutError:
                error = "timeout"
            except aiohttp.ClientError as exc:
                error = type(exc).__name__
            done = time.perf_counter()
            if error:
                self.result.errors[error] += 1
                await asyncio.sleep(ERROR_PAUSE_SECONDS)
            elif started >= self.measure_from:
                self.result.ops += 1
                self.result.latency.record(done - started)
                self.last_done = max(self.last_done, done)


async def run_job(job: LoadJob) -> LoadResult:
    """Drive ``job.clients`` clients in this process until the budget is spent."""
    run = _Run(job)
    cpu_start = time.process_time()
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=job.request_timeout_s)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(
            *(run.client(session, job.client_offset + i) for i in range(job.clients))
        )
    result = run.result
    result.elapsed_s = max(run.last_done - run.measure_from, 1e-9)
    result.cpu_s = time.process_time() - cpu_start
    wall = time.perf_counter() - (run.measure_from - job.warmup_s)
    result.max_process_cpu = result.cpu_s / wall if wall > 0 else 0.0
    return result


def split(job: LoadJob, processes: int) -> list[LoadJob]:
    """``job`` as ``processes`` jobs with disjoint clients and a share of the op budget."""
    processes = max(1, min(processes, job.clients))
    jobs = []
    first = 0
    for p in range(processes):
        clients = job.clients // processes + (1 if p < job.clients % processes else 0)
        budget = job.max_ops // processes + (1 if p < job.max_ops % processes else 0)
        jobs.append(replace(job, clients=clients, max_ops=max(1, budget), client_offset=first))
        first += clients
    return jobs


def merge(results: list[LoadResult]) -> LoadResult:
    """One result from several processes' results of the same run."""
    merged = LoadResult(processes=len(results))
    for result in results:
        merged.ops += result.ops
        merged.errors.update(result.errors)
        merged.cpu_s += result.cpu_s
        merged.elapsed_s = max(merged.elapsed_s, result.elapsed_s)
        merged.max_process_cpu = max(merged.max_process_cpu, result.max_process_cpu)
        merged.latency.merge(result.latency)
    return merged


class GeneratorError(RuntimeError):
    """A generator process failed; the message carries its stderr."""


class Generators:
    """One job run by ``processes`` generator processes at once (each in its own group)."""

    def __init__(self, job: LoadJob, processes: int = 1) -> None:
        self.jobs = split(job, processes)
        self.budget_s = job.warmup_s + job.duration_s + job.request_timeout_s
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        for job in self.jobs:
            proc = subprocess.Popen(
                [sys.executable, "-m", "raftpod_sidecar.bench.loadgen", json.dumps(job.to_json())],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
            self.procs.append(proc)

    def wait(self) -> LoadResult:
        """Every process's result, merged; kills them all if one overruns its budget."""
        deadline = time.monotonic() + self.budget_s + STARTUP_SLACK_SECONDS
        results = []
        try:
            for proc in self.procs:
                remaining = max(0.1, deadline - time.monotonic())
                out, err = proc.communicate(timeout=remaining)
                if proc.returncode != 0:
                    raise GeneratorError(
                        f"load generator exited with {proc.returncode}: {err.decode()[-2000:]}"
                    )
                results.append(LoadResult.from_json(json.loads(out)))
        finally:
            self.stop()
        return merge(results)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()


def run_generators(job: LoadJob, processes: int = 1) -> LoadResult:
    """Run ``job`` over ``processes`` generator processes and wait for the merged result."""
    generators = Generators(job, processes)
    generators.start()
    return generators.wait()


def main() -> int:
    job = LoadJob.from_json(json.loads(sys.argv[1]))
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with runner:
        result = runner.run(run_job(job))
    json.dump(result.to_json(), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
