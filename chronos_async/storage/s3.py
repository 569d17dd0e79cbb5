"""Payloads in S3-compatible object storage (AWS S3, DigitalOcean Spaces, SeaweedFS, MinIO).

One long-lived aioboto3 client per store, opened in ``__aenter__`` and reused by every call
(creating a client costs far more than a request). Puts are conditional
(``If-None-Match: *``), so an object is never overwritten.
"""

from __future__ import annotations

import builtins
import contextlib
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from typing import Any, Final

import aioboto3
import aiohttp
import anyio.to_thread
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, get_session
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    IncompleteReadError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from chronos_async._config import SpacesConnection
from chronos_async._errors import StorageError, ValidationError
from chronos_async.storage._common import (
    Lifecycle,
    check_key,
    check_prefix,
    check_span,
    is_valid_key,
)
from chronos_async.storage._protocol import BlobInfo, BlobMissingError, Role
from chronos_async.storage._s3_common import (
    DELETE_BATCH,
    buckets_of,
    check_ttl,
    key_prefix_of,
    retryable_status,
    s3_identity,
    scrub,
    secrets_of,
)

__all__ = ["S3BlobStore"]

#: S3 accepts at most 1000 keys per DeleteObjects call and per listing page.
_DELETE_BATCH: Final = DELETE_BATCH
_MAX_PAGE: Final = 1000
_MISSING_CODES: Final = frozenset({"NoSuchKey", "404", "NotFound"})
_EXISTS_CODES: Final = frozenset({"PreconditionFailed", "412"})


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "Unknown"))


def _warm_session() -> AioSession:
    # Building the first client reads and parses botocore's JSON models (tens of ms of
    # file I/O and parsing). Doing that here, in a worker thread, keeps it off the event
    # loop; the loader caches what it read for the client created afterwards.
    session = get_session()
    with contextlib.suppress(Exception):  # only an optimisation: never fail start-up on it
        loader = session.get_component("data_loader")
        loader.load_service_model("s3", "service-2")
        loader.load_service_model("s3", "endpoint-rule-set-1")
        for name in ("endpoints", "partitions", "_retry", "sdk-default-configuration"):
            loader.load_data(name)
    return session


class S3BlobStore:
    """A :class:`~chronos_async.storage.BlobStore` over one S3-compatible endpoint.

    Roles map to the connection's buckets (``json`` -> ``json_bucket``, ``content`` ->
    ``content_bucket``, ``backups`` -> ``backups_bucket``); ``conn.key_prefix`` (if any) is
    prepended to every key as ``<prefix>/<key>`` and stripped again by :meth:`list`.
    ``max_attempts`` counts every attempt botocore makes (the first one included).
    ``list_page_size`` is the number of keys per listing request (at most 1000).

    Example::

        async with S3BlobStore(conn) as store:
            await store.put(key, body, sha256=digest)
            url = await store.presign_get(key, ttl_seconds=600)
    """

    kind = "s3"

    def __init__(
        self,
        conn: SpacesConnection,
        *,
        max_pool_connections: int = 64,
        connect_timeout: float = 5,
        read_timeout: float = 30,
        max_attempts: int = 3,
        list_page_size: int = _MAX_PAGE,
    ) -> None:
        if not 1 <= list_page_size <= _MAX_PAGE:
            raise ValidationError(f"list_page_size must be 1-{_MAX_PAGE}, got {list_page_size}")
        if max_attempts < 1:
            raise ValidationError(f"max_attempts must be at least 1, got {max_attempts}")
        self._conn = conn
        self._buckets = buckets_of(conn)
        self._prefix = key_prefix_of(conn)
        self._page_size = list_page_size
        self._config = AioConfig(
            region_name=conn.region,
            signature_version="s3v4",
            s3={"addressing_style": "path" if conn.force_path_style else "auto"},
            retries={"total_max_attempts": max_attempts, "mode": "standard"},
            max_pool_connections=max_pool_connections,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            # We verify sha256 ourselves; botocore's default CRC32 trailer would make every
            # PUT a chunked upload and every GET a second hash pass for nothing.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        self._secrets = secrets_of(conn)
        self._client: Any = None
        self._stack: AsyncExitStack | None = None
        self._life = Lifecycle("S3 blob store")

    def __repr__(self) -> str:
        buckets = ", ".join(self._buckets.values())
        return f"S3BlobStore(endpoint={self._conn.endpoint!r}, buckets=[{buckets}])"

    @property
    def identity(self) -> str:
        """``s3:<endpoint>|<json bucket>|<key prefix>``: the payloads this store can see.

        Scheme and host are lower-cased and the default port is made explicit, so two
        spellings of one endpoint agree; credentials and region play no part. A store
        of the other client (:class:`~chronos_async.storage.ObstoreBlobStore`) on the
        same connection has the same identity.
        """
        return s3_identity(self._conn)

    async def __aenter__(self) -> S3BlobStore:
        """Open the long-lived S3 client (no request is sent; see :meth:`ping`)."""
        self._life.opening()
        try:
            with self._errors("open client", None, None):
                core = await anyio.to_thread.run_sync(_warm_session)
                session = aioboto3.Session(
                    aws_access_key_id=self._conn.access_key.get_secret_value(),
                    aws_secret_access_key=self._conn.secret_key.get_secret_value(),
                    region_name=self._conn.region,
                    botocore_session=core,
                )
                async with AsyncExitStack() as stack:
                    self._client = await stack.enter_async_context(
                        session.client("s3", endpoint_url=self._conn.endpoint, config=self._config)
                    )
                    self._stack = stack.pop_all()
        except BaseException:
            self._life.closing()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Close the client and its connection pool (closing twice is fine)."""
        if self._life.closing() and self._stack is not None:
            stack, self._stack, self._client = self._stack, None, None
            await stack.aclose()

    # -- the protocol ---------------------------------------------------------------------

    async def put(
        self,
        key: str,
        body: bytes,
        *,
        sha256: str,
        content_type: str = "application/json",
        role: Role = "json",
    ) -> None:
        """Store ``body`` under ``key`` with a conditional PUT; never overwrites.

        Putting the same bytes (same sha256 and size) under the same key again succeeds,
        so a PUT retried after a lost response is harmless; different bytes raise
        :class:`~chronos_async.StorageError` ("already exists").
        """
        client, bucket = self._open(role)
        full = self._prefix + check_key(key)
        with self._errors("PutObject", role, key):
            try:
                await client.put_object(
                    Bucket=bucket,
                    Key=full,
                    Body=body,
                    ContentType=content_type,
                    Metadata={"sha256": sha256},
                    IfNoneMatch="*",
                )
            except ClientError as exc:
                if _code(exc) not in _EXISTS_CODES:
                    raise
                head = await client.head_object(Bucket=bucket, Key=full)
                if head.get("Metadata", {}).get("sha256") != sha256 or head.get(
                    "ContentLength"
                ) != len(body):
                    raise StorageError(
                        f"S3 PutObject of {key!r} in the {role} store refused: the key "
                        "already exists with other bytes; payload objects are never "
                        "overwritten",
                        retryable=False,
                    ) from None

    async def get(self, key: str, *, role: Role = "json") -> bytes:
        """The bytes stored under ``key`` (:class:`BlobMissingError` if there are none)."""
        client, bucket = self._open(role)
        full = self._prefix + check_key(key)
        with self._errors("GetObject", role, key):
            try:
                response = await client.get_object(Bucket=bucket, Key=full)
            except ClientError as exc:
                if _code(exc) in _MISSING_CODES:
                    raise BlobMissingError(role, key) from None
                raise
            async with response["Body"] as stream:
                data: bytes = await stream.read()
                return data

    async def get_range(self, key: str, *, offset: int, length: int, role: Role = "json") -> bytes:
        """``length`` bytes of ``key`` from ``offset``: one GetObject with a Range header."""
        client, bucket = self._open(role)
        full = self._prefix + check_key(key)
        check_span(offset, length)
        with self._errors("GetObject (range)", role, key):
            try:
                response = await client.get_object(
                    Bucket=bucket, Key=full, Range=f"bytes={offset}-{offset + length - 1}"
                )
            except ClientError as exc:
                if _code(exc) in _MISSING_CODES:
                    raise BlobMissingError(role, key) from None
                raise
            async with response["Body"] as stream:
                data: bytes = await stream.read()
                return data

    async def delete(self, keys: builtins.list[str], *, role: Role = "json") -> None:
        """Remove ``keys`` with DeleteObjects (1000 per request); missing keys are ignored."""
        client, bucket = self._open(role)
        full = [self._prefix + check_key(key) for key in keys]
        for start in range(0, len(full), _DELETE_BATCH):
            chunk = full[start : start + _DELETE_BATCH]
            with self._errors("DeleteObjects", role, None):
                response = await client.delete_objects(
                    Bucket=bucket,
                    Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True},
                )
            failed = [e for e in response.get("Errors", []) if e.get("Code") != "NoSuchKey"]
            if failed:
                code = str(failed[0].get("Code", "Unknown"))
                first = str(failed[0].get("Key", ""))[len(self._prefix) :]
                raise StorageError(
                    self._scrub(
                        f"S3 DeleteObjects in the {role} store failed for {len(failed)} "
                        f"key(s), first {first!r}: {code} {failed[0].get('Message', '')}"
                    ),
                    retryable=retryable_status(None, code),
                )

    async def list(self, prefix: str, *, role: Role = "json") -> AsyncIterator[BlobInfo]:
        """Every object whose key starts with ``prefix``, streamed page by page.

        The order is the server's: key order (UTF-8 bytes) on AWS S3, MinIO, Ceph and
        Spaces, but SeaweedFS (4.48) lists folder by folder, i.e. ordered by the tuple of
        ``/``-separated segments, so ``a/x`` comes before ``a-b/x`` and ``a.c`` there.
        The two orders differ only where one sibling name extends another with ``-`` or
        ``.``; callers that merge a listing with another sorted sequence must sort it
        first. Objects whose names are not valid keys (written by others) are skipped.
        """
        client, bucket = self._open(role)
        check_prefix(prefix)
        strip = len(self._prefix)
        paginator = client.get_paginator("list_objects_v2")
        pages = paginator.paginate(
            Bucket=bucket,
            Prefix=self._prefix + prefix,
            PaginationConfig={"PageSize": self._page_size},
        )
        async with contextlib.aclosing(aiter(pages)) as iterator:
            while True:
                with self._errors("ListObjectsV2", role, prefix):
                    try:
                        page = await anext(iterator)
                    except StopAsyncIteration:
                        return
                for obj in page.get("Contents", []):
                    key = str(obj["Key"])[strip:]
                    if is_valid_key(key):
                        yield BlobInfo(key, int(obj["Size"]), obj["LastModified"])

    async def presign_get(self, key: str, *, ttl_seconds: int, role: Role = "json") -> str:
        """A presigned GET URL for ``key``, valid for ``ttl_seconds`` (1 s to 7 days).

        Computed locally (no request); the object is not checked for existence.
        """
        client, bucket = self._open(role)
        full = self._prefix + check_key(key)
        check_ttl(ttl_seconds)
        with self._errors("presign GetObject", role, key):
            url: str = await client.generate_presigned_url(
                "get_object", Params={"Bucket": bucket, "Key": full}, ExpiresIn=ttl_seconds
            )
            return url

    async def ping(self) -> None:
        """HeadBucket on the json bucket: checks reachability, credentials and the bucket."""
        client, bucket = self._open("json")
        with self._errors("HeadBucket", "json", None):
            await client.head_bucket(Bucket=bucket)

    # -- helpers ------------------------------------------------------------------------------

    def _open(self, role: Role) -> tuple[Any, str]:
        self._life.check()
        try:
            return self._client, self._buckets[role]
        except KeyError:
            raise ValidationError(f"unknown store role {role!r}") from None

    def _scrub(self, message: str) -> str:
        return scrub(message, self._secrets)

    @contextlib.contextmanager
    def _errors(self, op: str, role: Role | None, key: str | None) -> Iterator[None]:
        """Turn every botocore/aiohttp/OS error into a :class:`StorageError`."""
        where = (f" of {key!r}" if key is not None else "") + (
            f" in the {role} store ({self._buckets[role]})" if role is not None else ""
        )
        try:
            yield
        except StorageError:
            raise
        except ClientError as exc:
            error = exc.response.get("Error", {})
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            code = _code(exc)
            detail = f": {error['Message']}" if error.get("Message") else ""
            retryable = retryable_status(status if isinstance(status, int) else None, code)
            raise StorageError(
                self._scrub(f"S3 {op}{where} failed: {code} (HTTP {status}){detail}"),
                retryable=retryable,
            ) from exc
        except (BotoConnectionError, HTTPClientError, IncompleteReadError) as exc:
            # Refused or reset connections, connect/read timeouts, truncated bodies.
            raise StorageError(
                self._scrub(f"S3 {op}{where} failed: {type(exc).__name__}: {exc}"),
                retryable=True,
            ) from exc
        except (aiohttp.ClientError, OSError) as exc:  # TimeoutError is an OSError
            raise StorageError(
                self._scrub(f"S3 {op}{where} failed: {type(exc).__name__}: {exc}"),
                retryable=True,
            ) from exc
        except BotoCoreError as exc:
            # Invalid parameters or configuration: the same call will fail again.
            raise StorageError(
                self._scrub(f"S3 {op}{where} failed: {type(exc).__name__}: {exc}"),
                retryable=False,
            ) from exc
