"""The recorded history of a chaos run, in the JSON format of docs/history-format.md.

One ``Op`` per client operation, with the monotonic call and return times and
what the client learned: ``ok`` (it happened, with this output), ``fail`` (it
definitely did not happen) or ``unknown`` (it may or may not have happened).
``porcupine-check`` reads the file; other checkers can convert it.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FORMAT = "raftpod-history/1"
OK, FAIL, UNKNOWN = "ok", "fail", "unknown"


@dataclass
class Op:
    process: int
    node: str
    op: str  # put | get | cas
    key: str
    call: int  # time.monotonic_ns() before sending
    value: str | None = None  # put
    expected: str | None = None  # cas; None: the key was absent
    new: str | None = None  # cas
    ret: int | None = None  # time.monotonic_ns() after the answer (or giving up)
    status: str = UNKNOWN
    output: dict[str, Any] | None = None  # get: {"value": str | None}
    error: str | None = None  # why it failed or is unknown
    request_id: str | None = None  # the X-Request-Id a write was sent with, if any

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "process": self.process,
            "node": self.node,
            "op": self.op,
            "key": self.key,
        }
        if self.op == "put":
            doc["value"] = self.value
        elif self.op == "cas":
            doc["expected"] = self.expected
            doc["new"] = self.new
        doc.update(call=self.call, status=self.status)
        doc["return"] = self.ret
        if self.output is not None:
            doc["output"] = self.output
        if self.error is not None:
            doc["error"] = self.error
        if self.request_id is not None:
            doc["request_id"] = self.request_id
        return doc


@dataclass
class History:
    ops: list[Op] = field(default_factory=list)
    nemesis: list[dict[str, Any]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Operations per status, e.g. ``{"ok": 812, "fail": 40, "unknown": 9}``."""
        tally = Counter(op.status for op in self.ops)
        return {status: tally[status] for status in (OK, FAIL, UNKNOWN)}

    def write(self, path: Path) -> Path:
        """The JSON document with one operation per line, so a diff or grep reads well."""
        head = json.dumps({"format": FORMAT, "nemesis": self.nemesis})[:-1]
        ops = ",\n".join(json.dumps(op.to_json()) for op in self.ops)
        path.write_text(f'{head}, "ops": [\n{ops}\n]}}\n')
        return path
