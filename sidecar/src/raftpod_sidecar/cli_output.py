"""Output files named on a command line, opened before the work they will record."""

from __future__ import annotations

import argparse
from typing import IO


def open_for_writing(parser: argparse.ArgumentParser, flag: str, path: str) -> IO[str]:
    """``path`` opened for writing now: one that cannot be written is the parser's error
    (exit 2) before a long run, not a traceback after it. The caller closes it."""
    try:
        return open(path, "w", encoding="utf-8")
    except OSError as exc:
        parser.error(f"{flag} {path}: {exc.strerror}")
