"""A deadline on every payload-store call, whatever the store.

Client libraries bound their own steps (a connect timeout, a read timeout per socket
read, retries), but not the call as a whole: a stalled server that keeps the connection
open can hold a PUT for minutes. :class:`DeadlineStore` wraps any
:class:`~chronos_async.storage.BlobStore` and gives each call (each page of a listing)
at most ``seconds``; past that the call is abandoned and raises a retryable
:class:`~chronos_async.StorageError`. An abandoned PUT may still land later: its key is
unique to the write attempt, so at worst it leaves an orphan that ``reconcile`` removes.
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

from chronos_async._errors import StorageError
from chronos_async.storage._protocol import BlobInfo, BlobStore, Role

__all__ = ["DeadlineStore"]

T = TypeVar("T")


class DeadlineStore:
    """``inner`` with every call bounded by ``seconds`` (it is opened and closed with it)."""

    def __init__(self, inner: BlobStore, seconds: float) -> None:
        self.inner = inner
        self.kind = inner.kind
        self._seconds = seconds

    def __repr__(self) -> str:
        return f"DeadlineStore({self.inner!r}, {self._seconds:g} s)"

    @property
    def identity(self) -> str:
        """The identity of the wrapped store (two stores with one identity share data)."""
        return str(getattr(self.inner, "identity", repr(self.inner)))

    async def __aenter__(self) -> DeadlineStore:
        await self.inner.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.inner.__aexit__(*exc_info)

    async def _bounded(self, step: Awaitable[T], what: str) -> T:
        try:
            async with asyncio.timeout(self._seconds):
                return await step
        except TimeoutError:
            raise StorageError(
                f"{self.kind} store: {what} did not finish within {self._seconds:g} s",
                retryable=True,
            ) from None

    async def put(
        self,
        key: str,
        body: bytes,
        *,
        sha256: str,
        content_type: str = "application/json",
        role: Role = "json",
    ) -> None:
        """:meth:`BlobStore.put`, bounded."""
        await self._bounded(
            self.inner.put(key, body, sha256=sha256, content_type=content_type, role=role),
            f"put of {key!r}",
        )

    async def get(self, key: str, *, role: Role = "json") -> bytes:
        """:meth:`BlobStore.get`, bounded."""
        return await self._bounded(self.inner.get(key, role=role), f"get of {key!r}")

    async def get_range(self, key: str, *, offset: int, length: int, role: Role = "json") -> bytes:
        """:meth:`BlobStore.get_range`, bounded."""
        return await self._bounded(
            self.inner.get_range(key, offset=offset, length=length, role=role),
            f"ranged get of {key!r}",
        )

    async def delete(self, keys: builtins.list[str], *, role: Role = "json") -> None:
        """:meth:`BlobStore.delete`, bounded."""
        await self._bounded(self.inner.delete(keys, role=role), f"delete of {len(keys)} key(s)")

    async def list(self, prefix: str, *, role: Role = "json") -> AsyncIterator[BlobInfo]:
        """:meth:`BlobStore.list`, each step of the listing bounded."""
        source = aiter(self.inner.list(prefix, role=role))
        try:
            while True:
                try:
                    info = await self._bounded(anext(source), f"listing of {prefix!r}")
                except StopAsyncIteration:
                    return
                yield info
        finally:
            aclose = getattr(source, "aclose", None)
            if aclose is not None:
                await aclose()

    async def presign_get(self, key: str, *, ttl_seconds: int, role: Role = "json") -> str:
        """:meth:`BlobStore.presign_get`, bounded."""
        return await self._bounded(
            self.inner.presign_get(key, ttl_seconds=ttl_seconds, role=role), f"presign of {key!r}"
        )

    async def ping(self) -> None:
        """:meth:`BlobStore.ping`, bounded."""
        await self._bounded(self.inner.ping(), "ping")
