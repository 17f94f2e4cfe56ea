"""Backup URLs: what parses, and that every bad URL says what is wrong (and no secret)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from raftpod_sidecar.backupstore import (
    BackupUrlError,
    Compression,
    Credentials,
    FileLocation,
    S3Location,
    parse_url,
    redact_url,
)


def test_file_url_names_a_directory() -> None:
    location = parse_url("file:///var/backups/raft?compression=gzip")
    assert location == FileLocation(Path("/var/backups/raft"), Compression.GZIP)
    assert location.url == "file:///var/backups/raft"


def test_s3_url_carries_every_option() -> None:
    url = (
        "s3://my-bucket/backups/prod/?endpoint=http://10.0.0.1:7070&region=eu-west-1"
        "&sse=aws:kms&kms_key_id=key-1&compression=gzip&part_size=16MiB&addressing=virtual"
    )
    assert parse_url(url) == S3Location(
        bucket="my-bucket",
        prefix="backups/prod",
        endpoint="http://10.0.0.1:7070",
        region="eu-west-1",
        sse="aws:kms",
        kms_key_id="key-1",
        compression=Compression.GZIP,
        part_size=16 << 20,
        addressing="virtual",
    )


def test_s3_url_defaults() -> None:
    location = parse_url("s3://bucket")
    assert isinstance(location, S3Location)
    assert (location.prefix, location.endpoint, location.sse) == ("", None, None)
    assert (location.compression, location.part_size) == (Compression.NONE, 8 << 20)
    assert location.url == "s3://bucket"


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("", "empty"),
        ("http://example.com/x", "unsupported backup URL scheme 'http'"),
        ("/var/backups", "unsupported backup URL scheme '(none)'"),
        ("s3:///prefix", "names no bucket"),
        ("s3://Bad_Bucket/x", "not a valid S3 bucket name"),
        ("s3://ab/x", "not a valid S3 bucket name"),
        ("s3://10.0.0.1/x", "not a valid S3 bucket name"),
        ("s3://bucket:9000/x", "?endpoint=http://host:port"),
        ("s3://bucket/a//b", "empty, '.' or '..' path segment"),
        ("s3://bucket/a/../b", "empty, '.' or '..' path segment"),
        ("s3://bucket/x?colour=red", "unknown option 'colour'"),
        ("s3://bucket/x?region=a&region=b", "given twice"),
        ("s3://bucket/x?region=", "has no value"),
        ("s3://bucket/x?sse=DES", "use one of AES256, aws:kms"),
        ("s3://bucket/x?kms_key_id=k1", "kms_key_id needs sse=aws:kms"),
        ("s3://bucket/x?part_size=1MiB", "from 5MiB to 5GiB"),
        ("s3://bucket/x?part_size=lots", "from 5MiB to 5GiB"),
        ("s3://bucket/x?compression=lz4", "use one of none, gzip, zstd"),
        ("s3://bucket/x?endpoint=ftp://host", "use http(s)://host[:port]"),
        ("s3://bucket/x?addressing=dns", "use one of path, virtual, auto"),
        ("s3://bucket/x#latest", "#fragment"),
        ("file://backuphost/var/b", "use file:///absolute/path"),
        ("file:relative/dir", "needs an absolute directory"),
        ("file:///", "needs an absolute directory"),
        ("file:///b?endpoint=http://h", "unknown option 'endpoint'"),
    ],
)
def test_bad_urls_say_what_is_wrong(url: str, says: str) -> None:
    with pytest.raises(BackupUrlError) as info:
        parse_url(url)
    assert says in str(info.value)


def test_credentials_in_the_url_are_refused_without_echoing_them() -> None:
    with pytest.raises(BackupUrlError) as info:
        parse_url("s3://AKIAEXAMPLE:hunter2secret@bucket/x")
    assert "credentials do not belong in a backup URL" in str(info.value)
    assert "hunter2secret" not in str(info.value)
    assert redact_url("s3://a:b@bucket/x") == "s3://***@bucket/x"


def test_credentials_repr_hides_the_secret() -> None:
    assert "hunter2secret" not in repr(Credentials("AKIAEXAMPLE", "hunter2secret", "tok3n"))
    assert "tok3n" not in repr(Credentials("AKIAEXAMPLE", "hunter2secret", "tok3n"))


def test_zstd_without_the_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "zstandard", None)  # makes `import zstandard` fail
    with pytest.raises(BackupUrlError, match="needs the zstandard package"):
        parse_url("s3://bucket/x?compression=zstd")
