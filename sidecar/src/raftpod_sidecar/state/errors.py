"""Errors of the state machine, split the h11 way.

Outcomes of *applying* a command (a failed compare, an unknown lease, a
malformed command found in the log) are never raised from ``apply``: they are
error results, ``{"error": CODE, "message": ..., "index": ...}``, replicated
and cached like any other result, because an exception there would stop the
node on every replica at once. Exceptions are for the caller's side: a bad
command at proposal time, and reads asking for history that was dropped.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """``error`` values in results; ``HTTP_STATUS`` says how the app API maps them."""

    COMPARE_FAILED = "compare_failed"
    LEASE_NOT_FOUND = "lease_not_found"
    INVALID_COMMAND = "invalid_command"
    STALE_REQUEST = "stale_request"


HTTP_STATUS: dict[str, int] = {
    ErrorCode.COMPARE_FAILED: 409,
    ErrorCode.LEASE_NOT_FOUND: 404,
    ErrorCode.INVALID_COMMAND: 400,
    ErrorCode.STALE_REQUEST: 409,
}


class InvalidCommandError(ValueError):
    """A command's bytes or fields are not a valid command; the message says which part."""


class CompactedError(LookupError):
    """History older than ``oldest`` was dropped; resume from ``oldest`` or re-read the state."""

    what = "position"

    def __init__(self, requested: int, oldest: int) -> None:
        self.requested = requested
        self.oldest = oldest
        super().__init__(
            f"{self.what} {requested} is no longer retained; the oldest retained "
            f"{self.what} is {oldest}: re-read the current state and resume from there"
        )


class CompactedRevisionError(CompactedError):
    """A watch asked for events older than the retained event history."""

    what = "revision"


class CompactedLogError(CompactedError):
    """A log reader asked for opaque commands older than the retained ones."""

    what = "index"
