"""porcupine-check on hand-made histories: it accepts linearizable ones and can fail.

Each history is a few operations with explicit times (ns), written with the same
``History`` writer the chaos test uses, so the format and the checker are tested
together.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .checker import check
from .history import FAIL, OK, UNKNOWN, History, Op


def put(key: str, value: str, call: int, ret: int | None, *, status: str = OK, p: int = 0) -> Op:
    return Op(p, "n1", "put", key, call, value=value, ret=ret, status=status)


def get(key: str, value: str | None, call: int, ret: int, p: int = 1) -> Op:
    return Op(p, "n2", "get", key, call, ret=ret, status=OK, output={"value": value})


def cas(
    key: str, expected: str | None, new: str, call: int, ret: int | None, *, status: str = OK
) -> Op:
    return Op(2, "n3", "cas", key, call, expected=expected, new=new, ret=ret, status=status)


def verdict(porcupine: Path, tmp_path: Path, *ops: Op, out: Path | None = None) -> str:
    path = History(list(ops)).write(tmp_path / "history.json")
    result = check(porcupine, path, out)
    expected_rc = {"ok": 0, "illegal": 1, "unknown": 2}[result.verdict]
    assert result.returncode == expected_rc, result
    return result.verdict


CASES = {
    "sequential": ("ok", [put("a", "1", 0, 10), get("a", "1", 20, 30)]),
    "absent-before-first-write": ("ok", [get("a", None, 0, 5), put("a", "1", 10, 20)]),
    "concurrent-read-sees-either": (
        "ok",
        [put("a", "1", 0, 10), put("a", "2", 20, 60), get("a", "1", 30, 40), get("a", "2", 45, 50)],
    ),
    "keys-are-independent": (
        "ok",
        [put("a", "1", 0, 10), put("b", "2", 20, 30), get("a", "1", 40, 50), get("b", "2", 40, 50)],
    ),
    "stale-read": (
        "illegal",
        [put("a", "1", 0, 10), put("a", "2", 20, 30), get("a", "1", 40, 50)],
    ),
    "lost-acknowledged-write": ("illegal", [put("a", "1", 0, 10), get("a", None, 20, 30)]),
    "value-flips-back": (
        "illegal",
        [put("a", "1", 0, 10), put("a", "2", 0, 10), get("a", "2", 20, 30), get("a", "1", 40, 50)],
    ),
    "failed-write-observed": (
        "illegal",
        [put("a", "9", 0, 10, status=FAIL), get("a", "9", 20, 30)],
    ),
    "failed-write-ignored": ("ok", [put("a", "9", 0, 10, status=FAIL), get("a", None, 20, 30)]),
    "cas-swaps": ("ok", [put("a", "1", 0, 10), cas("a", "1", "2", 20, 30), get("a", "2", 40, 50)]),
    "cas-on-absent-key": ("ok", [cas("a", None, "1", 0, 10), get("a", "1", 20, 30)]),
    "cas-with-wrong-expected": (
        "illegal",
        [put("a", "3", 0, 10), cas("a", "1", "2", 20, 30)],
    ),
    "unknown-write-may-apply-late": (
        "ok",
        [put("a", "1", 0, None, status=UNKNOWN), get("a", None, 50, 60), get("a", "1", 70, 80)],
    ),
    "unknown-write-may-never-apply": (
        "ok",
        [put("a", "1", 0, 5, status=UNKNOWN), get("a", None, 50, 60), get("a", None, 70, 80)],
    ),
    "unknown-write-cannot-apply-before-its-call": (
        "illegal",
        [get("a", "1", 0, 10), put("a", "1", 20, None, status=UNKNOWN)],
    ),
    "unknown-write-cannot-vanish-once-seen": (
        "illegal",
        [put("a", "1", 0, None, status=UNKNOWN), get("a", "1", 50, 60), get("a", None, 70, 80)],
    ),
    "unknown-cas-may-apply": (
        "ok",
        [put("a", "1", 0, 10), cas("a", "1", "2", 20, None, status=UNKNOWN), get("a", "2", 90, 95)],
    ),
    "unknown-cas-only-swaps-its-expected-value": (
        "illegal",
        [put("a", "3", 0, 10), cas("a", "1", "2", 20, None, status=UNKNOWN), get("a", "2", 90, 95)],
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_hand_made_history(porcupine: Path, tmp_path: Path, name: str) -> None:
    expected, ops = CASES[name]
    assert verdict(porcupine, tmp_path, *ops) == expected


NEMESIS = [
    {"time": 5, "event": "start", "kind": "isolate", "node": "n1", "mode": "drop"},
    {"time": 5, "event": "cut", "links": [["n1", "n2"], ["n2", "n1"]]},
    {"time": 25, "event": "heal"},
]


def test_illegal_history_gets_a_visualization_with_the_faults(
    porcupine: Path, tmp_path: Path
) -> None:
    viz = tmp_path / "viz.html"
    history = History([put("a", "1", 0, 10), get("a", None, 20, 30)], NEMESIS)
    result = check(porcupine, history.write(tmp_path / "history.json"), viz)
    assert (result.verdict, result.returncode) == ("illegal", 1), result
    html = viz.read_text()
    assert "<html" in html[:2000].lower()
    assert '"Tag":"nemesis"' in html and "isolate n1: drop [[n1 n2] [n2 n1]]" in html


def test_a_malformed_nemesis_timeline_is_ignored(porcupine: Path, tmp_path: Path) -> None:
    history = History([put("a", "1", 0, 10), get("a", "1", 20, 30)], [{"time": "soon"}])
    result = check(porcupine, history.write(tmp_path / "history.json"))
    assert (result.verdict, result.returncode) == ("ok", 0), result


def test_too_hard_within_the_bound_is_unknown(porcupine: Path, tmp_path: Path) -> None:
    """Many concurrent writes and a read of a value nobody wrote: an exponential search."""
    ops = [put("a", str(i), 0, 100, p=i) for i in range(22)]
    ops.append(get("a", "never-written", 200, 210, p=99))
    path = History(ops).write(tmp_path / "history.json")
    result = check(porcupine, path, timeout=0.3)
    assert (result.verdict, result.returncode) == ("unknown", 2), result


@pytest.mark.parametrize(
    "doc",
    [
        "not json",
        json.dumps({"format": "other", "ops": []}),
        json.dumps({"format": "raftpod-history/1"}),
        json.dumps({"format": "raftpod-history/1", "ops": [{"op": "put"}]}),
        json.dumps(
            {
                "format": "raftpod-history/1",
                "ops": [
                    {
                        "process": 0,
                        "op": "get",
                        "key": "a",
                        "call": 5,
                        "return": 1,
                        "status": "ok",
                        "output": {"value": None},
                    }
                ],
            }
        ),
        json.dumps(
            {
                "format": "raftpod-history/1",
                "ops": [
                    {
                        "process": 0,
                        "op": "cas",
                        "key": "a",
                        "new": "x",
                        "call": 0,
                        "return": 1,
                        "status": "ok",
                    }
                ],
            }
        ),
    ],
)
def test_bad_input_exits_2_without_a_verdict(porcupine: Path, tmp_path: Path, doc: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(doc)
    result = check(porcupine, path)
    assert (result.verdict, result.returncode) == ("", 2), result
    assert "porcupine-check:" in result.stderr
