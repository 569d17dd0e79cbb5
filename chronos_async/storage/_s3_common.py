"""What the two S3 stores share (pure): buckets, key prefix, identity, TTLs, error codes.

:class:`~chronos_async.storage.S3BlobStore` (aioboto3) and
:class:`~chronos_async.storage.ObstoreBlobStore` (obstore) must agree on everything a
stored object carries, so that either client reads, compares, lists and deletes what the
other wrote, and so that two stores on one bucket are recognised as one whichever client
each uses: the same keys (``<key prefix>/<key>``), the same metadata (``sha256``), the
same identity string, the same TTL bounds and the same idea of which errors are worth
retrying.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import urlsplit

from chronos_async._config import SpacesConnection
from chronos_async._errors import ValidationError
from chronos_async.storage._protocol import Role

__all__ = [
    "DELETE_BATCH",
    "MAX_PRESIGN_SECONDS",
    "RETRYABLE_CODES",
    "buckets_of",
    "check_ttl",
    "key_prefix_of",
    "normal_endpoint",
    "retryable_status",
    "s3_identity",
    "scrub",
    "secrets_of",
]

#: S3 accepts at most 1000 keys per DeleteObjects call.
DELETE_BATCH: Final = 1000
#: SigV4 presigned URLs live at most 7 days.
MAX_PRESIGN_SECONDS: Final = 7 * 24 * 3600
#: Error codes that mean "try again later" even when the HTTP status is a 4xx.
RETRYABLE_CODES: Final = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestThrottled",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "RequestTimeout",
        "InternalError",
        "ServiceUnavailable",
        # AWS: another conditional write to the same key is in flight.
        "ConditionalRequestConflict",
        "OperationAborted",
    }
)


def normal_endpoint(endpoint: str) -> str:
    """``endpoint`` with scheme and host lower-cased and the port explicit."""
    parts = urlsplit(endpoint)
    try:
        port = parts.port
    except ValueError:  # an invalid port: keep the text as it is
        return endpoint
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    port = port if port is not None else (443 if scheme == "https" else 80)
    return f"{scheme}://{host}:{port}{parts.path.rstrip('/')}"


def buckets_of(conn: SpacesConnection) -> dict[Role, str]:
    """The bucket of each role: ``json``, ``content`` and ``backups``."""
    return {
        "json": conn.json_bucket,
        "content": conn.content_bucket,
        "backups": conn.backups_bucket,
    }


def key_prefix_of(conn: SpacesConnection) -> str:
    """What is prepended to every key: ``"<key_prefix>/"``, or ``""`` without a prefix."""
    return f"{conn.key_prefix}/" if conn.key_prefix else ""


def s3_identity(conn: SpacesConnection) -> str:
    """``s3:<endpoint>|<json bucket>|<key prefix>``: the payloads a store on ``conn`` sees.

    Scheme and host are lower-cased and the default port is made explicit, so two
    spellings of one endpoint agree; credentials, region and client play no part.
    """
    return f"s3:{normal_endpoint(conn.endpoint)}|{conn.json_bucket}|{key_prefix_of(conn)}"


def check_ttl(ttl_seconds: int) -> None:
    """Raise :class:`~chronos_async.ValidationError` unless 1 s <= TTL <= 7 days."""
    if not 1 <= ttl_seconds <= MAX_PRESIGN_SECONDS:
        raise ValidationError(
            f"ttl_seconds must be 1-{MAX_PRESIGN_SECONDS} for a presigned URL, got {ttl_seconds}"
        )


def retryable_status(status: int | None, code: str | None) -> bool:
    """Whether an S3 error answer is worth retrying: 5xx, 408, 429, or a throttling code."""
    return (code is not None and code in RETRYABLE_CODES) or (
        status is not None and (status >= 500 or status in (408, 429))
    )


def secrets_of(conn: SpacesConnection) -> tuple[str, ...]:
    """The credentials of ``conn`` that must never appear in a message."""
    keys = (conn.access_key.get_secret_value(), conn.secret_key.get_secret_value())
    return tuple(key for key in keys if key)


def scrub(message: str, secrets: tuple[str, ...]) -> str:
    """``message`` with every secret replaced by ``***``."""
    for secret in secrets:
        message = message.replace(secret, "***")
    return message
