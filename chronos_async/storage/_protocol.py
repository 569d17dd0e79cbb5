"""The payload-store protocol every backend implements (S3, local folder, MongoDB)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol, runtime_checkable

from chronos_async._errors import StorageError

__all__ = ["BlobInfo", "BlobMissingError", "BlobStore", "Role"]

#: Which bucket (or sub-folder) a key lives in: version payloads, externalized
#: content, or backups/manifests.
Role = Literal["json", "content", "backups"]


class BlobMissingError(StorageError):
    """The key does not exist in the store."""

    def __init__(self, role: Role, key: str) -> None:
        super().__init__(f"no object {key!r} in the {role} store", retryable=False)
        self.role = role
        self.key = key


@dataclass(frozen=True, slots=True)
class BlobInfo:
    """One stored object, as listed by :meth:`BlobStore.list`."""

    key: str
    size: int
    modified_at: datetime


@runtime_checkable
class BlobStore(Protocol):
    """Immutable object storage for payloads.

    Keys are relative (``tenant/db/collection/id/v3/<token>.json``) and unique per write
    attempt, so ``put`` never needs to overwrite. Every method raises
    :class:`~chronos_async.StorageError` (with ``retryable`` set for transient failures)
    and never a backend-specific exception; a missing key on ``get`` raises
    :class:`BlobMissingError`. Stores are async context managers: open once at start-up,
    reuse, close at shutdown.
    """

    #: "s3", "local" or "mongo".
    kind: str

    @property
    def identity(self) -> str:
        """Where the objects live, as a string without credentials.

        Two stores with the same identity see the same objects (for example every backend
        of a ``payload_storage="local"`` setup, or two S3 connections on one bucket and
        key prefix), so whoever deletes from one must consider the references of all.
        Stable for the life of an open store; no I/O.
        """
        ...

    async def __aenter__(self) -> BlobStore: ...

    async def __aexit__(self, *exc_info: object) -> None: ...

    async def put(
        self,
        key: str,
        body: bytes,
        *,
        sha256: str,
        content_type: str = "application/json",
        role: Role = "json",
    ) -> None:
        """Store ``body`` under ``key``; ``sha256`` (hex) is kept as object metadata."""
        ...

    async def get(self, key: str, *, role: Role = "json") -> bytes:
        """The bytes stored under ``key``."""
        ...

    async def get_range(self, key: str, *, offset: int, length: int, role: Role = "json") -> bytes:
        """``length`` bytes of the object ``key`` from ``offset`` (a ranged GET).

        Fewer bytes come back when the object is shorter; callers verify what they read.
        """
        ...

    async def delete(self, keys: list[str], *, role: Role = "json") -> None:
        """Remove ``keys``; keys that do not exist are ignored."""
        ...

    def list(self, prefix: str, *, role: Role = "json") -> AsyncIterator[BlobInfo]:
        """Every object whose key starts with ``prefix``.

        The order is stable for a store but not necessarily plain key order (SeaweedFS
        lists folder by folder); callers that need key order sort.
        """
        ...

    async def presign_get(self, key: str, *, ttl_seconds: int, role: Role = "json") -> str:
        """A URL that fetches ``key`` without credentials until ``ttl_seconds`` pass."""
        ...

    async def ping(self) -> None:
        """Raise :class:`~chronos_async.StorageError` unless the store answers."""
        ...
