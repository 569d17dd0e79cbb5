"""What a collection handle is bound to: backend, names, rules, and per-item gates."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chronos_async._activity import Activity
from chronos_async._checkpoints import CheckpointInfo, Checkpoints, Point
from chronos_async._config import ChronosConfig
from chronos_async._keys import NO_TENANT
from chronos_async._sections import CollectionMap
from chronos_async.meta import IdemRepo, RecordRepo
from chronos_async.storage import BlobStore
from chronos_async.storage._batcher import PackWriter

if TYPE_CHECKING:
    from chronos_async.counters import Counting

__all__ = ["ItemGates", "Scope", "now_us"]


def now_us() -> int:
    """Wall-clock time in integer microseconds since the epoch."""
    return time.time_ns() // 1000


class ItemGates:
    """In-process, per-record locks.

    Writers of one process queue here (woken by the lock, no polling) before they ask
    MongoDB for the record's lease, so the lease is contended only across processes.
    Entries are dropped when nobody holds or waits for them.
    """

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        """Hold the gate of ``key`` for the duration of the block."""
        lock, users = self._locks.get(key, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock_now, users_now = self._locks[key]
            if users_now <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock_now, users_now - 1)

    def __len__(self) -> int:
        return len(self._locks)


@dataclass(frozen=True, slots=True)
class Scope:
    """Everything the read and write paths of one collection handle need."""

    db: str
    collection: str
    tenant: str | None
    repo: RecordRepo
    store: BlobStore
    cmap: CollectionMap
    config: ChronosConfig
    owner: str
    gates: ItemGates
    #: Awaited before the first operation: creates the collection's indexes once.
    ready: Callable[[], Awaitable[None]]
    #: Idempotency-key reservations, and the awaitable that creates their indexes once
    #: (on the collection's first keyed write).
    idem: IdemRepo
    idem_ready: Callable[[], Awaitable[None]]
    checkpoints: Checkpoints
    #: The instance's writes in flight and their clean-ups (bounded close).
    activity: Activity
    #: The MongoDB clients of every backend sharing ``store`` (this one included): where
    #: versions that may point into a pack of ``store`` live.
    store_clients: tuple[Any, ...]
    #: Group commit of small payloads into packs (``write_optimization.batch_s3``).
    packs: PackWriter | None = None
    #: The collection's counters (``None`` when counting is off).
    counting: Counting | None = None

    def counted(self, version: dict[str, Any]) -> None:
        """Count ``version``, which this process just published (once per version)."""
        if self.counting is not None:
            self.counting.published(version)

    async def reach(self, point: Point, item_id: str, ov: int, op: str) -> None:
        """Pass checkpoint ``point`` of a write (a no-op unless a hook is installed)."""
        if self.checkpoints.active:
            info = CheckpointInfo(self.db, self.collection, self.tenant, item_id, ov, op)
            await self.checkpoints.reach(point, info)

    @property
    def t(self) -> str:
        """The tenant as stored in documents (``NO_TENANT`` when there is none)."""
        return self.tenant or NO_TENANT

    @property
    def commit_us(self) -> int:
        """The commit window (``deadlines.commit_ms``) in microseconds."""
        return self.config.deadlines.commit_ms * 1000

    def where(self, item_id: str) -> str:
        """A human-readable name of a record for messages."""
        tenant = f"tenant {self.tenant!r}, " if self.tenant else ""
        return f"{tenant}{self.db}.{self.collection} id {item_id!r}"
