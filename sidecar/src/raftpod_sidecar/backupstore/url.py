"""Backup locations from URLs: ``file:///path/prefix`` and ``s3://bucket/prefix?opts``.

Everything about *where* a backup goes is in one string, so the operator's
``POST /admin/backup {"url"}`` and ``--restore-from URL`` carry it whole. S3
options ride in the query (``endpoint``, ``region``, ``sse``, ``kms_key_id``,
``compression``, ``part_size``, ``addressing``); credentials never do: they
come from explicit :class:`Credentials` or boto3's default chain (``AWS_*``
environment, web identity, instance profile). A URL whose last segment ends in
``.snap`` names one backup object (for restores) rather than a prefix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from .errors import BackupUrlError
from .format import Compression, compression_from_text

MIB = 1 << 20
MIN_PART_SIZE = 5 * MIB  # S3 refuses smaller parts (except the last)
MAX_PART_SIZE = 5 << 30
DEFAULT_PART_SIZE = 8 * MIB
OBJECT_SUFFIX = ".snap"

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IPV4 = re.compile(r"^\d+\.\d+\.\d+\.\d+$")
_SIZE = re.compile(r"^(\d+)\s*(|b|k|kib|m|mib|g|gib)$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kib": 1 << 10, "m": MIB, "mib": MIB}
_UNITS |= {"g": 1 << 30, "gib": 1 << 30}
SSE_MODES = ("AES256", "aws:kms")
ADDRESSING_STYLES = ("path", "virtual", "auto")
S3_OPTIONS = ("endpoint", "region", "sse", "kms_key_id", "compression", "part_size", "addressing")
FILE_OPTIONS = ("compression",)


@dataclass(frozen=True)
class Credentials:
    """An explicit S3 key pair; without one boto3's default chain is used."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class FileLocation:
    """A directory; backups of cluster ``c`` live in ``<root>/<c>/``."""

    root: Path
    compression: Compression = Compression.NONE

    @property
    def url(self) -> str:
        return self.root.as_uri()


@dataclass(frozen=True)
class S3Location:
    """A bucket and key prefix plus how to reach and write it."""

    bucket: str
    prefix: str = ""  # without leading or trailing "/"
    endpoint: str | None = None  # None: AWS_ENDPOINT_URL(_S3) or AWS itself
    region: str | None = None  # None: AWS_REGION / boto3's own lookup
    sse: str | None = None
    kms_key_id: str | None = None
    compression: Compression = Compression.NONE
    part_size: int = DEFAULT_PART_SIZE
    addressing: str | None = None  # None: "path" with an endpoint, else "auto"

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"


Location = FileLocation | S3Location


def redact_url(url: str) -> str:
    """``url`` without any ``user:password@`` part, safe to put in messages and logs."""
    return re.sub(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)[^/?#]*@", r"\1***@", url)


def parse_url(url: str) -> Location:
    """The location ``url`` names; :class:`BackupUrlError` says what is wrong with it."""
    if not isinstance(url, str) or not url.strip():
        raise BackupUrlError("backup URL is empty: use file:///path or s3://bucket/prefix")
    shown = redact_url(url)
    parts = urlsplit(url)
    if parts.scheme not in ("file", "s3"):
        raise BackupUrlError(
            f"unsupported backup URL scheme {parts.scheme or '(none)'!r} in {shown!r}: "
            "use file:///path or s3://bucket/prefix"
        )
    if "@" in parts.netloc:
        raise BackupUrlError(
            f"credentials do not belong in a backup URL ({shown!r}): set AWS_ACCESS_KEY_ID "
            "and AWS_SECRET_ACCESS_KEY, give a credentials Secret, or use the pod's identity"
        )
    if parts.fragment:
        raise BackupUrlError(f"backup URL {shown!r} must not have a #fragment")
    options = _options(parts.query, shown, S3_OPTIONS if parts.scheme == "s3" else FILE_OPTIONS)
    compression = compression_from_text(options.get("compression", "none"), shown)
    if parts.scheme == "file":
        return _file_location(parts.netloc, parts.path, shown, compression)
    return _s3_location(parts.netloc, parts.path, shown, options, compression)


def _options(query: str, shown: str, allowed: tuple[str, ...]) -> dict[str, str]:
    options: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True, strict_parsing=False):
        if key not in allowed:
            raise BackupUrlError(
                f"unknown option {key!r} in {shown!r}; known: {', '.join(allowed)}"
            )
        if key in options:
            raise BackupUrlError(f"option {key!r} is given twice in {shown!r}")
        if not value:
            raise BackupUrlError(f"option {key!r} has no value in {shown!r}")
        options[key] = value
    return options


def _segments(path: str, shown: str) -> list[str]:
    segments = [unquote(s) for s in path.strip("/").split("/")] if path.strip("/") else []
    for segment in segments:
        if segment in ("", ".", ".."):
            raise BackupUrlError(
                f"backup URL {shown!r} has an empty, '.' or '..' path segment; "
                "give a plain path such as s3://bucket/backups/prod"
            )
    return segments


def _file_location(netloc: str, path: str, shown: str, compression: Compression) -> FileLocation:
    if netloc not in ("", "localhost"):
        raise BackupUrlError(
            f"file URL {shown!r} names host {netloc!r}; use file:///absolute/path (three slashes)"
        )
    if not path.startswith("/") or not path.strip("/"):
        raise BackupUrlError(f"file URL {shown!r} needs an absolute directory: file:///path")
    return FileLocation(Path("/", *_segments(path, shown)), compression)


def _s3_location(
    netloc: str, path: str, shown: str, options: dict[str, str], compression: Compression
) -> S3Location:
    if ":" in netloc:
        raise BackupUrlError(
            f"s3 URL {shown!r}: the host part is the bucket, not a server; give the server "
            "as ?endpoint=http://host:port"
        )
    if not netloc:
        raise BackupUrlError(f"s3 URL {shown!r} names no bucket: use s3://bucket/prefix")
    if not _BUCKET.match(netloc) or ".." in netloc or _IPV4.match(netloc):
        raise BackupUrlError(
            f"{netloc!r} is not a valid S3 bucket name (3-63 lowercase letters, digits, "
            "dots and hyphens, starting and ending with a letter or digit)"
        )
    sse = options.get("sse")
    if sse is not None and sse not in SSE_MODES:
        raise BackupUrlError(f"sse={sse!r} in {shown!r}: use one of {', '.join(SSE_MODES)}")
    kms_key_id = options.get("kms_key_id")
    if kms_key_id is not None and sse != "aws:kms":
        raise BackupUrlError(f"kms_key_id needs sse=aws:kms in {shown!r}")
    addressing = options.get("addressing")
    if addressing is not None and addressing not in ADDRESSING_STYLES:
        raise BackupUrlError(
            f"addressing={addressing!r} in {shown!r}: use one of {', '.join(ADDRESSING_STYLES)}"
        )
    endpoint = options.get("endpoint")
    if endpoint is not None:
        ep = urlsplit(endpoint)
        if ep.scheme not in ("http", "https") or not ep.hostname or ep.query or ep.fragment:
            raise BackupUrlError(f"endpoint={endpoint!r} in {shown!r}: use http(s)://host[:port]")
    return S3Location(
        bucket=netloc,
        prefix="/".join(_segments(path, shown)),
        endpoint=endpoint,
        region=options.get("region"),
        sse=sse,
        kms_key_id=kms_key_id,
        compression=compression,
        part_size=_part_size(options.get("part_size"), shown),
        addressing=addressing,
    )


def _part_size(text: str | None, shown: str) -> int:
    if text is None:
        return DEFAULT_PART_SIZE
    match = _SIZE.match(text.strip())
    size = int(match.group(1)) * _UNITS[match.group(2).lower()] if match else 0
    if not MIN_PART_SIZE <= size <= MAX_PART_SIZE:
        raise BackupUrlError(
            f"part_size={text!r} in {shown!r}: give a size from 5MiB to 5GiB (e.g. 8MiB)"
        )
    return size
