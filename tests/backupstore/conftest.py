"""Fixtures of tests/backupstore (defined in s3server.py so other areas can import them)."""

from __future__ import annotations

from tests.backupstore.s3server import s3_bucket, s3_server

__all__ = ["s3_bucket", "s3_server"]
