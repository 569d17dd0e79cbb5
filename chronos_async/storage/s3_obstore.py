"""Payloads in S3-compatible object storage through obstore (Rust's ``object_store``).

The same contract, keys, metadata and identity as :class:`~chronos_async.storage.S3BlobStore`
(the aioboto3 client), so either client reads, compares, lists and deletes what the other
wrote. What differs is where the work happens: obstore signs, sends and parses requests
on a Rust (tokio) runtime in its own threads and hands the event loop only the result,
so a request costs a fraction of aioboto3's Python CPU (about 1 ms against 5 ms per PUT
or GET on the benchmark machine) and concurrent requests do not queue behind one another
on the event loop.

How each part of the contract is reached through ``object_store``:

1. **One client per bucket.** ``__aenter__`` builds one ``S3Store`` per distinct bucket
   (in a worker thread: building one loads TLS roots); every call reuses it.
2. **Credentials are static and explicit.** obstore reads ``AWS_*`` environment
   variables for every setting it is not given (an ambient ``AWS_SESSION_TOKEN`` would be
   sent with our keys and fail every request), so the keys are passed as a credential
   provider (which takes precedence over the environment) and the settings that change
   what is sent are pinned.
3. **put** is ``PutMode.create`` (``If-None-Match: *``) with the sha256 as user metadata
   (``x-amz-meta-sha256``, as aioboto3 writes it). On 412 a HEAD reads the existing
   object's size and sha256: the same bytes succeed (a retried PUT), others are refused.
   409 (AWS: another conditional write to the key is in flight) is retryable.
4. **list**: ``object_store`` matches a prefix by whole path segments (``a/b`` lists
   ``a/b/...`` only), so the folder of the prefix is listed, starting after the prefix
   minus its last character, and only keys that start with the prefix are kept.
5. **Errors**: ``object_store`` reports the HTTP status and the S3 error body only as
   text; :func:`_describe` reads the status, the S3 code and message, or the transport
   failure, and decides ``retryable`` as :class:`S3BlobStore` does (5xx, 408, 429,
   throttling codes, connection failures and timeouts are retryable).
"""

from __future__ import annotations

import builtins
import contextlib
import re
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Final

import anyio.to_thread
import obstore
from obstore.exceptions import AlreadyExistsError
from obstore.exceptions import BaseError as ObstoreError
from obstore.store import S3Store

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

if TYPE_CHECKING:
    from obstore.store import ClientConfig, RetryConfig, S3Credential

__all__ = ["ObstoreBlobStore"]

#: Listed (never written) by :meth:`ObstoreBlobStore.ping`: a folder no payload is in.
_PING_FOLDER: Final = ".chronos-ping"
_STATUS = re.compile(r"status code: (\d{3})")
_CODE = re.compile(r"<Code>([^<]*)</Code>")
_MESSAGE = re.compile(r"<Message>([^<]*)</Message>")
#: A transport failure in object_store's debug text: ``HttpError { kind: Connect, ...``.
_HTTP_KIND = re.compile(r"HttpError \{\s*kind: (\w+)")
_OS_MESSAGE = re.compile(r'message: "([^"]*)"')


class _StaticCredentials:
    """The connection's keys as an obstore credential provider (called once, cached)."""

    __slots__ = ("_access", "_secret")

    def __init__(self, conn: SpacesConnection) -> None:
        self._access = conn.access_key.get_secret_value()
        self._secret = conn.secret_key.get_secret_value()

    def __repr__(self) -> str:
        return "_StaticCredentials(***)"

    def __call__(self) -> S3Credential:
        return {
            "access_key_id": self._access,
            "secret_access_key": self._secret,
            "token": None,
            "expires_at": None,
        }


def _status_of(exc: Exception) -> int | None:
    """The HTTP status an obstore error reports, if the server answered."""
    found = _STATUS.search(str(exc).partition("\n\nDebug source:")[0])
    return int(found.group(1)) if found else None


def _describe(exc: Exception) -> tuple[str, bool, str | None]:
    """``(text, retryable, S3 code)`` of an obstore error (before scrubbing).

    An answer from the server is classified by its status and S3 code; a failure to get
    one (refused or reset connection, timeout, truncated body) is retryable; anything
    else (invalid configuration or path) is not.
    """
    full = str(exc)
    summary, _, debug = full.partition("\n\nDebug source:")
    found = _STATUS.search(summary)
    code_match = _CODE.search(full)
    code = code_match.group(1) if code_match else None
    if found is not None:
        status = int(found.group(1))
        message = _MESSAGE.search(full)
        detail = f": {message.group(1)}" if message and message.group(1) else ""
        return f"{code or 'Unknown'} (HTTP {status}){detail}", retryable_status(status, code), code
    first = summary.strip().splitlines()[0] if summary.strip() else type(exc).__name__
    kind = _HTTP_KIND.search(debug)
    if kind is not None:
        cause = _OS_MESSAGE.search(debug)
        because = f" ({cause.group(1)})" if cause else ""
        return f"{kind.group(1)} error{because}: {first}", True, None
    transient = isinstance(exc, (TimeoutError, ConnectionError))
    return f"{type(exc).__name__}: {first}", transient, None


class ObstoreBlobStore:
    """A :class:`~chronos_async.storage.BlobStore` over one S3-compatible endpoint, via obstore.

    Roles map to the connection's buckets as in
    :class:`~chronos_async.storage.S3BlobStore`, ``conn.key_prefix`` is prepended as
    ``<prefix>/<key>`` and stripped by :meth:`list`, objects carry the same metadata
    (``sha256``) and the store has the same :attr:`identity`. ``max_attempts`` counts
    every attempt obstore makes (the first one included; PUTs and deletes are not
    retried after a timeout, reads are). ``connect_timeout`` bounds a connection,
    ``read_timeout`` each read of a response, ``request_timeout`` a whole request.
    ``list_chunk_size`` is how many listed objects obstore hands over at a time (the
    server's page size is its own, 1000 on S3).

    Example::

        async with ObstoreBlobStore(conn) as store:
            await store.put(key, body, sha256=digest)
            url = await store.presign_get(key, ttl_seconds=600)
    """

    kind = "s3"

    def __init__(
        self,
        conn: SpacesConnection,
        *,
        connect_timeout: float = 5,
        read_timeout: float = 30,
        request_timeout: float = 300,
        max_attempts: int = 3,
        list_chunk_size: int = 1000,
    ) -> None:
        if max_attempts < 1:
            raise ValidationError(f"max_attempts must be at least 1, got {max_attempts}")
        if list_chunk_size < 1:
            raise ValidationError(f"list_chunk_size must be at least 1, got {list_chunk_size}")
        if min(connect_timeout, read_timeout, request_timeout) <= 0:
            raise ValidationError("timeouts must be positive")
        self._conn = conn
        self._buckets = buckets_of(conn)
        self._prefix = key_prefix_of(conn)
        self._chunk = list_chunk_size
        self._client_options: ClientConfig = {
            "allow_http": conn.endpoint.lower().startswith("http://"),
            "connect_timeout": timedelta(seconds=connect_timeout),
            "read_timeout": timedelta(seconds=read_timeout),
            "timeout": timedelta(seconds=request_timeout),
        }
        self._retry: RetryConfig = {
            "max_retries": max_attempts - 1,
            "retry_timeout": timedelta(seconds=request_timeout),
        }
        self._secrets = secrets_of(conn)
        self._stores: dict[str, S3Store] = {}
        self._life = Lifecycle("S3 blob store (obstore)")

    def __repr__(self) -> str:
        buckets = ", ".join(self._buckets.values())
        return f"ObstoreBlobStore(endpoint={self._conn.endpoint!r}, buckets=[{buckets}])"

    @property
    def identity(self) -> str:
        """``s3:<endpoint>|<json bucket>|<key prefix>``, as :class:`S3BlobStore` has it.

        A store of either client on the same endpoint, bucket and prefix has this identity.
        """
        return s3_identity(self._conn)

    async def __aenter__(self) -> ObstoreBlobStore:
        """Build one long-lived obstore client per bucket (no request is sent; see :meth:`ping`)."""
        self._life.opening()
        try:
            with self._errors("open client", None, None):
                self._stores = await anyio.to_thread.run_sync(self._build)
        except BaseException:
            self._life.closing()
            raise
        return self

    def _build(self) -> dict[str, S3Store]:
        conn = self._conn
        credentials = _StaticCredentials(conn)
        return {
            bucket: S3Store(
                bucket,
                endpoint=conn.endpoint,
                region=conn.region,
                virtual_hosted_style_request=not conn.force_path_style,
                # Pinned so that AWS_* variables in the environment cannot change what is sent.
                skip_signature=False,
                unsigned_payload=False,
                request_payer=False,
                s3_express=False,
                conditional_put="etag",
                credential_provider=credentials,
                client_options=self._client_options,
                retry_config=self._retry,
            )
            for bucket in dict.fromkeys(self._buckets.values())
        }

    async def __aexit__(self, *exc_info: object) -> None:
        """Drop the clients and their connection pools (closing twice is fine)."""
        if self._life.closing():
            self._stores = {}

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
        store, _ = self._open(role)
        full = self._prefix + check_key(key)
        with self._errors("PutObject", role, key):
            try:
                await obstore.put_async(
                    store,
                    full,
                    body,
                    mode="create",
                    attributes={"Content-Type": content_type, "sha256": sha256},
                )
            except AlreadyExistsError as exc:
                if _status_of(exc) == 409:
                    # AWS: another conditional write to this key is still in flight.
                    text = _describe(exc)[0]
                    raise StorageError(
                        self._message("PutObject", role, key, text), retryable=True
                    ) from exc
                existing = await obstore.get_async(store, full, options={"head": True})
                same = existing.meta["size"] == len(body)
                if not same or existing.attributes.get("sha256") != sha256:
                    raise StorageError(
                        f"S3 PutObject of {key!r} in the {role} store refused: the key "
                        "already exists with other bytes; payload objects are never "
                        "overwritten",
                        retryable=False,
                    ) from None

    async def get(self, key: str, *, role: Role = "json") -> bytes:
        """The bytes stored under ``key`` (:class:`BlobMissingError` if there are none)."""
        store, _ = self._open(role)
        full = self._prefix + check_key(key)
        with self._errors("GetObject", role, key, missing=True):
            result = await obstore.get_async(store, full)
            return (await result.bytes_async()).to_bytes()

    async def get_range(self, key: str, *, offset: int, length: int, role: Role = "json") -> bytes:
        """``length`` bytes of ``key`` from ``offset``: one GET with a Range header."""
        store, _ = self._open(role)
        full = self._prefix + check_key(key)
        check_span(offset, length)
        with self._errors("GetObject (range)", role, key, missing=True):
            data = await obstore.get_range_async(store, full, start=offset, length=length)
            return data.to_bytes()

    async def delete(self, keys: builtins.list[str], *, role: Role = "json") -> None:
        """Remove ``keys`` with DeleteObjects (1000 per request); missing keys are ignored."""
        store, _ = self._open(role)
        full = [self._prefix + check_key(key) for key in keys]
        for start in range(0, len(full), DELETE_BATCH):
            with self._errors("DeleteObjects", role, None):
                await obstore.delete_async(store, full[start : start + DELETE_BATCH])

    async def list(self, prefix: str, *, role: Role = "json") -> AsyncIterator[BlobInfo]:
        """Every object whose key starts with ``prefix``, streamed chunk by chunk.

        The order is the server's, as for :meth:`S3BlobStore.list
        <chronos_async.storage.S3BlobStore.list>` (key order on AWS S3, folder by folder
        on SeaweedFS). Objects whose names are not valid keys (written by others) are
        skipped.
        """
        store, _ = self._open(role)
        check_prefix(prefix)
        full = self._prefix + prefix
        cut = full.rfind("/")
        # object_store lists whole segments ("<folder>/..."): list the prefix's folder,
        # from just before the prefix (S3 StartAfter), and keep what starts with it.
        folder = full[:cut] if cut > 0 else None
        partial = full[cut + 1 :]
        offset = full[:-1] if len(partial) > 1 else None
        stream = obstore.list(store, folder, offset=offset, chunk_size=self._chunk)
        strip = len(self._prefix)
        while True:
            with self._errors("ListObjectsV2", role, prefix):
                try:
                    chunk = await anext(stream)
                except StopAsyncIteration:
                    return
            for meta in chunk:
                path = meta["path"]
                key = path[strip:]
                if path.startswith(full) and is_valid_key(key):
                    yield BlobInfo(key, meta["size"], meta["last_modified"])

    async def presign_get(self, key: str, *, ttl_seconds: int, role: Role = "json") -> str:
        """A presigned GET URL for ``key``, valid for ``ttl_seconds`` (1 s to 7 days).

        Computed locally (no request); the object is not checked for existence.
        """
        store, _ = self._open(role)
        full = self._prefix + check_key(key)
        check_ttl(ttl_seconds)
        with self._errors("presign GetObject", role, key):
            return await obstore.sign_async(store, "GET", full, timedelta(seconds=ttl_seconds))

    async def ping(self) -> None:
        """List an empty folder of the json bucket: checks reachability, keys and bucket.

        One ListObjectsV2 request (the permission HeadBucket needs, too); a missing
        bucket answers 404 ``NoSuchBucket``, which a HEAD of a missing key could not tell
        from a missing key.
        """
        store, _ = self._open("json")
        with self._errors("ListObjectsV2 (ping)", "json", None):
            stream = obstore.list(store, self._prefix + _PING_FOLDER, chunk_size=1)
            with contextlib.suppress(StopAsyncIteration):
                await anext(stream)

    # -- helpers ------------------------------------------------------------------------------

    def _open(self, role: Role) -> tuple[S3Store, str]:
        self._life.check()
        try:
            bucket = self._buckets[role]
        except KeyError:
            raise ValidationError(f"unknown store role {role!r}") from None
        return self._stores[bucket], bucket

    @contextlib.contextmanager
    def _errors(
        self, op: str, role: Role | None, key: str | None, *, missing: bool = False
    ) -> Iterator[None]:
        """Turn every obstore error into a :class:`StorageError`.

        With ``missing``, a 404 other than ``NoSuchBucket`` is the key's absence and
        raises :class:`BlobMissingError`.
        """
        try:
            yield
        except StorageError:
            raise
        except (ObstoreError, OSError, ValueError) as exc:
            text, retryable, code = _describe(exc)
            gone = isinstance(exc, FileNotFoundError) and code != "NoSuchBucket"
            if missing and gone and role is not None and key is not None:
                raise BlobMissingError(role, key) from None
            raise StorageError(self._message(op, role, key, text), retryable=retryable) from exc

    def _message(self, op: str, role: Role | None, key: str | None, text: str) -> str:
        where = (f" of {key!r}" if key is not None else "") + (
            f" in the {role} store ({self._buckets[role]})" if role is not None else ""
        )
        return scrub(f"S3 {op}{where} failed: {text}", self._secrets)
