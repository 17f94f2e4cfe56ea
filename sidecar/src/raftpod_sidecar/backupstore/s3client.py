"""A boto3 S3 client for a location, and turning boto errors into BackupErrors.

Retries are botocore's own "standard" mode (exponential backoff with jitter on
throttling, 5xx and connection errors, ``MAX_ATTEMPTS`` tries per request), not
hand-written loops. Endpoint and region come from the URL, else from
``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL`` and ``AWS_REGION`` as boto3 reads
them; credentials from :class:`Credentials`, else boto3's default chain (env,
web identity, container or instance role). Error messages name the operation,
the object and the S3 error code, and are scrubbed of any secret we know.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Literal, cast

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    PartialCredentialsError,
)
from botocore.exceptions import ConnectionError as S3ConnectionError

from .. import __version__
from .errors import BackupAccessError, BackupError, BackupNotFoundError
from .url import Credentials, S3Location

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

AddressingStyle = Literal["path", "virtual", "auto"]
MAX_ATTEMPTS = 5
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0
_DENIED = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "AllAccessDisabled",
    "403",
}
_MISSING = {"NoSuchKey", "NoSuchBucket", "NotFound", "404"}


def endpoint_of(location: S3Location) -> str | None:
    """The endpoint from the URL, else the one boto3 would take from the environment."""
    return (
        location.endpoint
        or os.environ.get("AWS_ENDPOINT_URL_S3")
        or os.environ.get("AWS_ENDPOINT_URL")
        or None
    )


def make_client(
    location: S3Location, credentials: Credentials | None
) -> tuple[S3Client, boto3.session.Session]:
    """A client (with its session, for redaction) configured for ``location``."""
    session = boto3.session.Session(
        aws_access_key_id=credentials.access_key_id if credentials else None,
        aws_secret_access_key=credentials.secret_access_key if credentials else None,
        aws_session_token=credentials.session_token if credentials else None,
        region_name=location.region,
    )
    endpoint = endpoint_of(location)
    style = location.addressing or ("path" if endpoint else "auto")
    config = Config(
        retries={"mode": "standard", "max_attempts": MAX_ATTEMPTS},
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=READ_TIMEOUT,
        s3={"addressing_style": cast(AddressingStyle, style)},
        user_agent_extra=f"raftpod/{__version__}",
    )
    try:
        client = session.client("s3", endpoint_url=endpoint, config=config)
    except BotoCoreError as exc:
        raise BackupError(f"cannot set up an S3 client for {location.url}: {exc}") from None
    return client, session


def _secrets(session: boto3.session.Session) -> list[str]:
    try:
        found = session.get_credentials()
    except BotoCoreError:
        return []
    if found is None:
        return []
    frozen = found.get_frozen_credentials()
    return [s for s in (frozen.secret_key, frozen.token) if s]


def scrub(text: str, session: boto3.session.Session) -> str:
    """``text`` with every secret of the session's credentials replaced by ``***``."""
    for secret in _secrets(session):
        text = text.replace(secret, "***")
    return text


def translate(
    exc: Exception, action: str, where: str, session: boto3.session.Session
) -> BackupError:
    """A BackupError saying what failed, where, and what to check."""
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return BackupAccessError(
            f"{action} {where}: no usable S3 credentials; set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY (a credentials Secret), or give the pod a cloud identity"
        )
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(
            error.get("Code")
            or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "unknown")
        )
        message = scrub(str(error.get("Message") or ""), session)
        detail = f"{code}: {message}" if message and message != code else code
        if code in _DENIED:
            return BackupAccessError(
                f"{action} {where}: S3 refused the credentials or permission ({detail}); "
                "check the access key, secret and bucket policy"
            )
        if code in _MISSING:
            return BackupNotFoundError(f"{action} {where}: not found ({detail})")
        return BackupError(f"{action} {where} failed: {detail}")
    if isinstance(exc, S3ConnectionError):
        return BackupError(
            f"{action} {where}: cannot reach the S3 endpoint after {MAX_ATTEMPTS} attempts "
            f"({scrub(str(exc), session)})"
        )
    return BackupError(f"{action} {where} failed: {scrub(str(exc), session)}")
