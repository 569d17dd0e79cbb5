"""Payloads kept in MongoDB itself (``payload_storage="mongo"``): no object store needed.

One document per object: ``{_id: "<role>:<key>", role, key, body, sha256, size,
content_type, created_at}``. The ``_id`` doubles as the uniqueness claim (an insert never
replaces) and as the listing index (a key-prefix listing is a range scan on ``_id``), so
the store needs no index of its own.
"""

from __future__ import annotations

import builtins
import contextlib
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any, Final

from bson.errors import BSONError
from pymongo import AsyncMongoClient
from pymongo.errors import (
    ConnectionFailure,
    DuplicateKeyError,
    ExecutionTimeout,
    OperationFailure,
    PyMongoError,
    WTimeoutError,
)

from chronos_async._errors import StorageError, ValidationError
from chronos_async.storage._common import Lifecycle, check_key, check_prefix, check_span
from chronos_async.storage._protocol import BlobInfo, BlobMissingError, Role

__all__ = ["MongoBlobStore"]

_ROLES: Final[frozenset[str]] = frozenset({"json", "content", "backups"})
_BATCH: Final = 1000
#: Sorts after every character a key may contain (all ASCII below 0x7f): the exclusive
#: upper bound of a prefix range on ``_id``.
_AFTER_KEY_CHARS: Final = "\x7f"
#: Server error codes after which the same operation can succeed (the retryable-writes
#: list of the MongoDB drivers specification, plus timeouts and lost cursors).
_RETRYABLE_CODES: Final = frozenset(
    {6, 7, 43, 50, 89, 91, 134, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436}
)
_MAX_MESSAGE: Final = 300


def _deployment(client: AsyncMongoClient[Any]) -> str:
    """The client's servers as ``host:port,...``, sorted (its topology, read without I/O)."""
    servers = client.topology_description.server_descriptions()
    # Host names are case-insensitive; a Unix socket path (no port) is not.
    return ",".join(
        sorted(f"{host.lower()}:{port}" if port is not None else host for host, port in servers)
    )


def _is_retryable(exc: PyMongoError) -> bool:
    if isinstance(exc, (ConnectionFailure, ExecutionTimeout, WTimeoutError)):
        # ConnectionFailure covers AutoReconnect, NetworkTimeout, NotPrimaryError and
        # ServerSelectionTimeoutError.
        return True
    if exc.has_error_label("RetryableWriteError") or exc.has_error_label(
        "TransientTransactionError"
    ):
        return True
    if exc.timeout:
        return True
    return isinstance(exc, OperationFailure) and exc.code in _RETRYABLE_CODES


class MongoBlobStore:
    """A :class:`~chronos_async.storage.BlobStore` inside a MongoDB collection.

    The client belongs to the caller: the store never closes it. Objects are limited by
    MongoDB's 16 MiB document size. There are no presigned URLs (:meth:`presign_get`
    raises). Example::

        store = MongoBlobStore(client, "chronos_payloads", "payloads")
        async with store:
            await store.put(key, body, sha256=digest)
    """

    kind = "mongo"

    def __init__(self, client: AsyncMongoClient[Any], database: str, collection: str) -> None:
        self._collection = client[database][collection]
        self._where = f"{database}.{collection}"
        self._identity = f"mongo:{_deployment(client)}/{self._where}"
        self._life = Lifecycle("MongoDB blob store")

    def __repr__(self) -> str:
        return f"MongoBlobStore({self._where!r})"

    @property
    def identity(self) -> str:
        """``mongo:<host:port,...>/<database>.<collection>`` (hosts sorted, lower-cased).

        The hosts are the client's view of its deployment when the store was created (its
        seed list, or the members it had discovered by then); no credentials.
        """
        return self._identity

    async def __aenter__(self) -> MongoBlobStore:
        """Mark the store open (no I/O: ``_id`` is the only index it uses)."""
        self._life.opening()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Mark the store closed; the client stays open (it belongs to the caller)."""
        self._life.closing()

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
        """Insert the object; an existing ``_id`` is never replaced.

        Putting the same bytes (same sha256 and size) under the same key again succeeds,
        so a retried insert is harmless; different bytes raise
        :class:`~chronos_async.StorageError` ("already exists").
        """
        doc_id = self._id(role, check_key(key))
        document = {
            "_id": doc_id,
            "role": role,
            "key": key,
            "body": body,
            "sha256": sha256,
            "size": len(body),
            "content_type": content_type,
            "created_at": datetime.now(UTC),
        }
        with self._errors("insert", role, key):
            try:
                await self._collection.insert_one(document)
            except DuplicateKeyError:
                found = await self._collection.find_one({"_id": doc_id}, {"sha256": 1, "size": 1})
                if found is None or found.get("sha256") != sha256 or found.get("size") != len(body):
                    raise StorageError(
                        f"MongoDB blob store: key {key!r} already exists in the {role} store "
                        "with other bytes; payload objects are never overwritten",
                        retryable=False,
                    ) from None

    async def get(self, key: str, *, role: Role = "json") -> bytes:
        """The bytes stored under ``key`` (:class:`BlobMissingError` if there are none)."""
        doc_id = self._id(role, check_key(key))
        with self._errors("find", role, key):
            found = await self._collection.find_one({"_id": doc_id}, {"body": 1})
        if found is None:
            raise BlobMissingError(role, key)
        # Real MongoDB returns subtype-0 Binary as bytes; nx-27017 returns bytes for every
        # subtype. bytes() covers both (and a Binary subclass) without copying twice.
        return bytes(found["body"])

    async def get_range(self, key: str, *, offset: int, length: int, role: Role = "json") -> bytes:
        """``length`` bytes of ``key`` from ``offset`` (the document is read whole)."""
        check_span(offset, length)
        body = await self.get(key, role=role)
        return body[offset : offset + length]

    async def delete(self, keys: builtins.list[str], *, role: Role = "json") -> None:
        """Remove ``keys`` (``delete_many`` with 1000 ids per call); missing keys are ignored."""
        ids = [self._id(role, check_key(key)) for key in keys]
        for start in range(0, len(ids), _BATCH):
            with self._errors("delete", role, None):
                await self._collection.delete_many({"_id": {"$in": ids[start : start + _BATCH]}})

    async def list(self, prefix: str, *, role: Role = "json") -> AsyncIterator[BlobInfo]:
        """Every object whose key starts with ``prefix``, in key order (bodies not read)."""
        low = self._id(role, check_prefix(prefix))
        cursor = self._collection.find(
            {"_id": {"$gte": low, "$lt": low + _AFTER_KEY_CHARS}},
            {"key": 1, "size": 1, "created_at": 1},
            sort=[("_id", 1)],
        )
        async with cursor:
            while True:
                with self._errors("find", role, prefix):
                    try:
                        doc = await cursor.next()
                    except StopAsyncIteration:
                        return
                created = doc["created_at"]
                if isinstance(created, datetime) and created.tzinfo is None:
                    created = created.replace(tzinfo=UTC)  # a client without tz_aware=True
                yield BlobInfo(str(doc["key"]), int(doc["size"]), created)

    async def presign_get(self, key: str, *, ttl_seconds: int, role: Role = "json") -> str:
        """Always raises :class:`~chronos_async.StorageError`: needs an S3 store."""
        self._id(role, check_key(key))
        raise StorageError("presigned URLs need an S3 store", retryable=False)

    async def ping(self) -> None:
        """Send ``ping`` to the database of the payload collection."""
        self._life.check()
        with self._errors("ping", None, None):
            await self._collection.database.command("ping")

    # -- helpers ------------------------------------------------------------------------------

    def _id(self, role: Role, key: str) -> str:
        self._life.check()
        if role not in _ROLES:
            raise ValidationError(f"unknown store role {role!r}")
        return f"{role}:{key}"

    @contextlib.contextmanager
    def _errors(self, op: str, role: Role | None, key: str | None) -> Iterator[None]:
        """Turn every pymongo/bson error into a :class:`StorageError`."""
        try:
            yield
        except StorageError:
            raise
        except (PyMongoError, BSONError) as exc:
            where = (f" of {key!r}" if key is not None else "") + (
                f" in the {role} store" if role is not None else ""
            )
            detail = str(exc)
            if len(detail) > _MAX_MESSAGE:
                detail = detail[:_MAX_MESSAGE] + "..."
            raise StorageError(
                f"MongoDB blob store ({self._where}): {op}{where} failed: "
                f"{type(exc).__name__}: {detail}",
                retryable=isinstance(exc, PyMongoError) and _is_retryable(exc),
            ) from exc
