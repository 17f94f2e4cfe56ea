"""Structured logging: one line per event, as JSON or logfmt.

Events are logged with ``event(logger, "became leader", term=7)``; the node id
is added to every line, so ``msg="became leader" term=7 node=n3`` is what an
operator greps for. Plain ``logger.info("text")`` calls (from libraries) still
come out as one structured line.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

_FIELDS = "raftpod_fields"


def event(logger: logging.Logger, msg: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one structured event with key/value fields."""
    logger.log(level, msg, extra={_FIELDS: fields})


def _logfmt_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if text == "" or any(c in text for c in ' ="\n\t'):
        return json.dumps(text)
    return text


class StructuredFormatter(logging.Formatter):
    """Formats records as ``json`` or ``logfmt`` with the node id on every line."""

    def __init__(self, fmt: str, node: str) -> None:
        super().__init__()
        self.fmt = fmt
        self.node = node

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "msg": record.getMessage(),
        }
        fields.update(getattr(record, _FIELDS, {}))
        fields["node"] = self.node
        if record.name != "raftpod":
            fields["logger"] = record.name
        if record.exc_info:
            fields["error"] = self.formatException(record.exc_info)
        if self.fmt == "json":
            return json.dumps(fields, default=str)
        return " ".join(f"{k}={_logfmt_value(v)}" for k, v in fields.items())


def setup(fmt: str, level: str, node: str) -> logging.Logger:
    """Route all logging to stderr in the chosen format; returns the node's logger."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(StructuredFormatter(fmt, node))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    return logging.getLogger("raftpod")
