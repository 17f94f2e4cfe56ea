"""The ways a backup can fail, split so callers can map them to statuses.

Every message says what was wrong, where, and what to do; none ever contains a
credential (the S3 layer redacts the secret from anything it re-raises).
"""

from __future__ import annotations


class BackupError(Exception):
    """A backup could not be written, listed or read."""


class BackupUrlError(BackupError, ValueError):
    """A backup URL or option is malformed or unsupported (a caller's mistake: 400)."""


class BackupNotFoundError(BackupError):
    """No backup at the given key, or none at all under the given location."""


class BackupCorruptError(BackupError):
    """The backup exists but fails verification (checksum, size, format, cluster)."""


class BackupAccessError(BackupError):
    """The store refused us: missing or wrong credentials, or no permission."""
