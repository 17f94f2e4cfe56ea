"""Backups in S3 (or an S3-compatible store) with boto3.

Uploads stream: the encoded object is cut into parts of ``part_size`` bytes
(8 MiB by default) and sent as a multipart upload, so memory holds about two
parts whatever the snapshot's size; an object smaller than one part is a single
PUT. A failed multipart upload is aborted, so nothing half-written is ever
visible under the backup's key. The backup's metadata is repeated as S3 user
metadata (``x-amz-meta-*``) for people and tools browsing the bucket.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from ..logs import event
from .errors import BackupNotFoundError
from .format import CHUNK_SIZE, BackupMeta
from .s3client import make_client, translate
from .store import Clock, ObjectStore, log, utc_now
from .url import Credentials, S3Location

if TYPE_CHECKING:
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

_S3_ERRORS = (BotoCoreError, ClientError)


class S3Store(ObjectStore):
    """A BackupStore over ``s3://bucket/prefix``; keys are relative to the prefix."""

    def __init__(
        self,
        location: S3Location,
        *,
        credentials: Credentials | None = None,
        clock: Clock = utc_now,
    ) -> None:
        super().__init__(location, clock)
        self.s3 = location
        self.client, self._session = make_client(location, credentials)

    def object_url(self, key: str) -> str:
        return f"s3://{self.s3.bucket}/{self._full(key)}"

    def _full(self, key: str) -> str:
        return f"{self.s3.prefix}/{key}" if self.s3.prefix else key

    def _write_args(self) -> dict[str, Any]:
        args: dict[str, Any] = {}
        if self.s3.sse:
            args["ServerSideEncryption"] = self.s3.sse
        if self.s3.kms_key_id:
            args["SSEKMSKeyId"] = self.s3.kms_key_id
        return args

    def _error(self, exc: Exception, action: str, key: str) -> Exception:
        return translate(exc, action, self.object_url(key), self._session)

    def _upload(self, key: str, meta: BackupMeta, chunks: Iterator[bytes]) -> int:
        full = self._full(key)
        bucket = self.s3.bucket
        part_size = self.s3.part_size
        buffer = bytearray()
        upload_id: str | None = None
        parts: list[CompletedPartTypeDef] = []
        size = 0

        def send_part(body: bytes) -> None:
            assert upload_id is not None
            number = len(parts) + 1
            reply = self.client.upload_part(
                Bucket=bucket, Key=full, UploadId=upload_id, PartNumber=number, Body=body
            )
            parts.append({"PartNumber": number, "ETag": reply["ETag"]})

        try:
            for chunk in chunks:
                buffer += chunk
                while len(buffer) >= part_size:
                    if upload_id is None:
                        upload_id = self.client.create_multipart_upload(
                            Bucket=bucket,
                            Key=full,
                            Metadata=meta.user_metadata(),
                            ContentType="application/octet-stream",
                            **self._write_args(),
                        )["UploadId"]
                    with memoryview(buffer) as view:
                        body = view[:part_size].tobytes()
                    del buffer[:part_size]
                    send_part(body)
                    size += len(body)
                    del body
            size += len(buffer)
            if upload_id is None:
                self.client.put_object(
                    Bucket=bucket,
                    Key=full,
                    Body=bytes(buffer),
                    Metadata=meta.user_metadata(),
                    ContentType="application/octet-stream",
                    **self._write_args(),
                )
            else:
                if buffer:
                    send_part(bytes(buffer))
                self.client.complete_multipart_upload(
                    Bucket=bucket, Key=full, UploadId=upload_id, MultipartUpload={"Parts": parts}
                )
        except BaseException as exc:
            if upload_id is not None:
                self._abort(full, upload_id)
            if isinstance(exc, _S3_ERRORS):
                raise self._error(exc, "upload to", key) from None
            raise
        return size

    def _abort(self, full: str, upload_id: str) -> None:
        try:
            self.client.abort_multipart_upload(Bucket=self.s3.bucket, Key=full, UploadId=upload_id)
        except _S3_ERRORS as exc:
            event(
                log,
                "could not abort a failed multipart upload; a bucket lifecycle rule cleans it",
                logging.WARNING,
                url=f"s3://{self.s3.bucket}/{full}",
                error=type(exc).__name__,
            )

    def _download(self, key: str) -> tuple[Iterator[bytes], dict[str, str]]:
        try:
            reply = self.client.get_object(Bucket=self.s3.bucket, Key=self._full(key))
        except _S3_ERRORS as exc:
            raise self._error(exc, "download of", key) from None
        body = reply["Body"]

        def chunks() -> Iterator[bytes]:
            try:
                yield from body.iter_chunks(CHUNK_SIZE)
            except _S3_ERRORS as exc:
                raise self._error(exc, "download of", key) from None
            finally:
                body.close()

        return chunks(), dict(reply.get("Metadata", {}))

    def _keys(self) -> list[tuple[str, int]]:
        prefix = f"{self.s3.prefix}/" if self.s3.prefix else ""
        found: list[tuple[str, int]] = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.s3.bucket, Prefix=prefix
            )
            for page in pages:
                for item in page.get("Contents", []):
                    found.append((item["Key"][len(prefix) :], item.get("Size", 0)))
        except _S3_ERRORS as exc:
            raise self._error(exc, "listing of", "") from None
        return found

    def _delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.s3.bucket, Key=self._full(key))
        except _S3_ERRORS as exc:
            raise self._error(exc, "delete of", key) from None

    def _write_small(self, key: str, data: bytes) -> None:
        try:
            self.client.put_object(
                Bucket=self.s3.bucket,
                Key=self._full(key),
                Body=data,
                ContentType="application/json",
                **self._write_args(),
            )
        except _S3_ERRORS as exc:
            raise self._error(exc, "upload to", key) from None

    def _read_small(self, key: str) -> bytes | None:
        try:
            reply = self.client.get_object(Bucket=self.s3.bucket, Key=self._full(key))
            return reply["Body"].read()
        except _S3_ERRORS as exc:
            error = self._error(exc, "download of", key)
            if isinstance(error, BackupNotFoundError):
                return None
            raise error from None
