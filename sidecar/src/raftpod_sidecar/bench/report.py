"""What ``raftpod-bench compare`` leaves behind: ratios, goals, a JSON file and a chart.

The JSON document holds every measured figure of both systems plus the machine
it ran on; ``comparison_rows`` turns it into the terminal table (raftpod/etcd
ratios), ``goals`` checks it against the targets of the benchmark issue, and
``write_chart`` draws latency against throughput for both systems (matplotlib,
the optional ``bench`` extra; without it the chart is skipped with a note).
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1


# -- the machine ------------------------------------------------------------------


def machine_description(data_dir: Path, etcd_binary: Path | None) -> dict[str, Any]:
    """Cores, CPU model, memory, the disk holding the data dirs, kernel, Python, etcd, and
    the load average at the start (other tenants of the machine skew every figure)."""
    return {
        "nproc": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": round(_meminfo_kib("MemTotal") / 2**20, 1),
        "disk": _disk_of(data_dir),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "etcd": _etcd_version(etcd_binary) if etcd_binary else None,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _meminfo_kib(field: str) -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _disk_of(path: Path) -> dict[str, Any]:
    """The mount holding ``path``: device, filesystem, and whether it spins."""
    best = ("", "unknown", "unknown")
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            device, mount, fstype = line.split()[:3]
            resolved = str(path.resolve())
            inside = resolved == mount or resolved.startswith(mount.rstrip("/") + "/")
            if inside and len(mount) >= len(best[0]):
                best = (mount, device, fstype)
    except OSError:
        pass
    mount, device, fstype = best
    rotational = Path(f"/sys/block/{Path(device).name}/queue/rotational")
    spins = rotational.read_text().strip() == "1" if rotational.exists() else None
    return {"mount": mount, "device": device, "fstype": fstype, "rotational": spins}


def _etcd_version(binary: Path) -> str | None:
    try:
        out = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out.splitlines()[0].split(":", 1)[-1].strip() if out else None


# -- comparison and goals -----------------------------------------------------------


def _ratio(ours: float | None, theirs: float | None, digits: int = 2) -> float | None:
    if ours is None or theirs is None or theirs == 0:
        return None
    return round(ours / theirs, digits)


GOAL_DIGITS = 3
"""Goals are judged on ratios to 3 decimals, so 1.496 does not pass for 1.5."""


def _workloads(doc: dict[str, Any], system: str) -> dict[str, dict[str, Any]]:
    system_doc = doc["systems"].get(system) or {}
    return {w["name"]: w for w in system_doc.get("workloads", [])}


def comparison_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per workload: both systems' ops/s and latencies, and raftpod/etcd ratios
    (``x`` columns; above 1 means raftpod's figure is larger)."""
    ours, theirs = _workloads(doc, "raftpod"), _workloads(doc, "etcd")
    rows = []
    for name in [*ours, *(n for n in theirs if n not in ours)]:
        a, b = ours.get(name, {}), theirs.get(name, {})
        row: dict[str, Any] = {"workload": name}
        row["raftpod ops/s"] = a.get("ops_per_s")
        row["etcd ops/s"] = b.get("ops_per_s")
        row["ops x"] = _ratio(a.get("ops_per_s"), b.get("ops_per_s"))
        for label in ("p50", "p99"):
            mine = a.get("latency_ms", {}).get(label)
            other = b.get("latency_ms", {}).get(label)
            row[f"raftpod {label} ms"] = mine
            row[f"etcd {label} ms"] = other
            row[f"{label} x"] = _ratio(mine, other)
        row["errors r/e"] = f"{a.get('error_count', '-')}/{b.get('error_count', '-')}"
        cpu = [w.get("server", {}).get("cpu_cores", "-") for w in (a, b)]
        row["cpu r/e"] = f"{cpu[0]}/{cpu[1]}"
        rows.append(row)
    return rows


def timing_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Failover and leadership-transfer medians and the catch-up time of both systems, in
    ms, with the ratio."""
    rows = []
    for kind, field in (("failover", "median_s"), ("transfer", "median_s"), ("catchup", "seconds")):
        medians = [
            ((doc["systems"].get(system) or {}).get(kind) or {}).get(field)
            for system in ("raftpod", "etcd")
        ]
        rows.append(
            {
                "timing": f"{kind} {field.removesuffix('_s')}",
                "raftpod ms": _ms(medians[0]),
                "etcd ms": _ms(medians[1]),
                "x": _ratio(medians[0], medians[1]),
            }
        )
    return rows


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def goals(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's goals with the measured value and whether it is met (None: not measured)."""
    ours, theirs = _workloads(doc, "raftpod"), _workloads(doc, "etcd")
    raftpod = doc["systems"].get("raftpod") or {}

    def latency_ratio(name: str, label: str) -> float | None:
        return _ratio(
            ours.get(name, {}).get("latency_ms", {}).get(label),
            theirs.get(name, {}).get("latency_ms", {}).get(label),
            GOAL_DIGITS,
        )

    def ops_ratio(name: str) -> float | None:
        return _ratio(
            ours.get(name, {}).get("ops_per_s"),
            theirs.get(name, {}).get("ops_per_s"),
            GOAL_DIGITS,
        )

    idle = raftpod.get("idle_rss_mib") or {}
    worst_idle = max(idle.values()) if idle else None
    failover = (raftpod.get("failover") or {}).get("median_s")
    transfer = (raftpod.get("transfer") or {}).get("median_s")
    w64_p99 = latency_ratio("write-64", "p99")
    w64_ops = ops_ratio("write-64")
    table = [
        (
            "sequential write p50 to the leader, raftpod/etcd",
            "<=",
            0.7,
            latency_ratio("write-seq-leader", "p50"),
        ),
        (
            "sequential write p50 through a follower, raftpod/etcd",
            "<=",
            0.7,
            latency_ratio("write-seq-follower", "p50"),
        ),
        ("writes/s at 64 clients, raftpod/etcd", ">=", 1.5, w64_ops),
        ("write p99 at 64 clients, raftpod/etcd", "<=", 1.0, w64_p99),
        (
            "linearizable reads/s at 64 clients, raftpod/etcd",
            ">=",
            1.5,
            ops_ratio("read-linearizable-64"),
        ),
        ("failover median, s", "<", 1.0, failover),
        ("leadership transfer median, s", "<", 0.1, transfer),
        ("idle RSS per node, MiB", "<=", 100.0, worst_idle),
    ]
    return [
        {
            "goal": goal,
            "target": f"{op} {limit:g}",
            "measured": value,
            "met": None if value is None else _COMPARE[op](value, limit),
        }
        for goal, op, limit, value in table
    ]


_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "<": lambda value, limit: value < limit,
    "<=": lambda value, limit: value <= limit,
    ">=": lambda value, limit: value >= limit,
}


# -- output -------------------------------------------------------------------------


def write_results(doc: dict[str, Any], out_dir: Path, stamp: str, latest: bool) -> list[Path]:
    """``<stamp>.json`` and, with matplotlib, ``<stamp>.png``; copied to ``latest.*`` when
    ``latest`` (a run in which a system failed must not replace the last good one).
    Returns the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    data = out_dir / f"{stamp}.json"
    data.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    written = [data]
    chart = out_dir / f"{stamp}.png"
    if write_chart(doc, chart):
        written.append(chart)
    if latest:
        for path in list(written):
            copy = out_dir / ("latest" + path.suffix)
            copy.write_bytes(path.read_bytes())
            written.append(copy)
    return written


COLOURS = {"raftpod": "tab:blue", "etcd": "tab:orange"}


def write_chart(doc: dict[str, Any], path: Path) -> bool:
    """Latency (p50, p99) against throughput: writes by client count, and reads. False
    when matplotlib is not installed."""
    try:
        # Imported by name: matplotlib is optional, so type checks must not need it.
        matplotlib = importlib.import_module("matplotlib")
        matplotlib.use("Agg")
        plt = importlib.import_module("matplotlib.pyplot")
        ticker = importlib.import_module("matplotlib.ticker")
    except ImportError:
        return False
    figure, (writes, reads) = plt.subplots(1, 2, figsize=(12, 4.8))
    for system, colour in COLOURS.items():
        rows = _workloads(doc, system).values()
        series = sorted(
            (
                w
                for w in rows
                if w["op"] == "write"
                and w["value_bytes"] == 100
                and w["ops"]
                and w.get("members") != "follower"  # one point per client count
            ),
            key=lambda w: w["clients"],
        )
        if not series:
            continue
        for label, style in (("p50", "-"), ("p99", "--")):
            xs = [w["ops_per_s"] for w in series]
            ys = [w["latency_ms"][label] for w in series]
            writes.plot(xs, ys, style, marker="o", color=colour, label=f"{system} {label}")
        for w in series:
            writes.annotate(
                str(w["clients"]),
                (w["ops_per_s"], w["latency_ms"]["p50"]),
                textcoords="offset points",
                xytext=(4, -10),
                fontsize=7,
                color=colour,
            )
        for w in (w for w in rows if w["op"] == "read" and w["ops"]):
            reads.scatter(w["ops_per_s"], w["latency_ms"]["p50"], color=colour, marker="o")
            reads.scatter(w["ops_per_s"], w["latency_ms"]["p99"], color=colour, marker="x")
            reads.annotate(
                w["read_mode"],
                (w["ops_per_s"], w["latency_ms"]["p50"]),
                textcoords="offset points",
                xytext=(4, 4),
                fontsize=7,
                color=colour,
            )
    writes.set(
        title="writes, 100 B values (labels: clients; 1: to the leader)",
        xlabel="ops/s",
        ylabel="latency, ms (log)",
        yscale="log",
    )
    if writes.get_legend_handles_labels()[0]:
        writes.legend(fontsize=8)
    reads.set(
        title="reads (o p50, x p99; blue raftpod, orange etcd)",
        xlabel="ops/s",
        ylabel="latency, ms (log)",
        yscale="log",
    )
    for axes in (writes, reads):
        axes.yaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axes.yaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
        axes.yaxis.set_minor_formatter(ticker.NullFormatter())
        axes.grid(True, which="both", alpha=0.3)
    machine = doc.get("machine", {})
    figure.suptitle(
        f"raftpod vs etcd {machine.get('etcd') or ''}, 3 nodes on one"
        f" {machine.get('nproc')}-core machine, {doc.get('started_at', '')}",
        fontsize=10,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return True
