"""``chronos.fallback``: the durable retry queue of a Chronos instance.

What it covers, failure by failure:

- the payload store is down, or MongoDB fails transiently (a timeout, an election):
  a write made through :meth:`Fallback.collection` is stored in the MongoDB queue of the
  backend its record lives on, and applied by the worker once it can be;
- MongoDB itself does not answer: with ``fallback.spool_dir`` the operation goes to a
  local fsynced journal, moved into the MongoDB queue when it answers again; without a
  spool the write raises its :class:`~chronos_async.StorageError` (nothing is claimed
  durable);
- the process dies: queued operations are in MongoDB (or the journal); a claimed one is
  taken by another worker once its claim expires, and its idempotency key makes sure
  it is applied once.

A queued write is not visible to reads until it is applied.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from chronos_async._collection import Collection
from chronos_async._errors import (
    ConfigError,
    StorageError,
    ValidationError,
)
from chronos_async._models import Operation, WriteResult, from_us
from chronos_async._scope import Scope, now_us
from chronos_async._sections import FallbackConfig
from chronos_async.fallback._handle import QueuedCollection
from chronos_async.fallback._ops import (
    FallbackOp,
    QueuedWrite,
    QueueStats,
    error_doc,
    op_from_doc,
    retry_delay_s,
)
from chronos_async.fallback._queue import QueueRepo
from chronos_async.fallback._spool import Spool
from chronos_async.fallback._watch import OpWatch
from chronos_async.fallback._worker import FallbackWorker

if TYPE_CHECKING:
    from chronos_async._activity import Activity
    from chronos_async._client import Chronos

__all__ = ["Fallback"]

Doc = dict[str, Any]
log = logging.getLogger("chronos_async.fallback")
_DEAD_FILTERS = frozenset({"op", "tenant", "db", "collection"})


class Fallback:
    """The fallback queue of one :class:`~chronos_async.Chronos` instance.

    Enabled by ``fallback.enabled`` in the configuration; every method raises
    :class:`~chronos_async.ConfigError` otherwise. Example::

        orders = chronos.fallback.collection("orders", db="shop")
        r = await orders.create({"total": 12}, idempotency_key=request_id)
        if r.queued:
            final = await chronos.fallback.wait(r.op_id, timeout=30)
    """

    def __init__(self, chronos: Chronos) -> None:
        self._chronos = chronos
        self._worker: FallbackWorker | None = None
        self.spool: Spool | None = None
        self.queues: list[QueueRepo] = []
        #: Set when this process queues an operation: wakes the worker.
        self.wake = asyncio.Event()
        self._ready: list[bool] = []
        #: Following operations: ``status``, ``wait`` and what wakes them.
        self.watch = OpWatch(self)

    # -- lifecycle (driven by Chronos) -------------------------------------------------

    @property
    def enabled(self) -> bool:
        """Whether ``fallback.enabled`` is set."""
        cfg = self._chronos.config.fallback
        return cfg is not None and cfg.enabled

    @property
    def config(self) -> FallbackConfig:
        """The ``fallback`` section (:class:`ConfigError` when the queue is disabled)."""
        cfg = self._chronos.config.fallback
        if cfg is None or not cfg.enabled:
            raise ConfigError("the fallback queue is disabled (set fallback.enabled)")
        return cfg

    def _check(self) -> None:
        """Raise unless the queue is enabled and the instance open."""
        _ = self.config
        self._chronos._check_open()

    @property
    def activity(self) -> Activity:
        """The instance's writes and clean-ups (the worker's clean-ups are tracked too)."""
        return self._chronos._activity

    @property
    def cleanup_bound_s(self) -> float:
        """How long a clean-up may take (a few MongoDB steps)."""
        return 4 * self._chronos.config.deadlines.mongo_ms / 1000

    async def open(self) -> None:
        """Connect the queue of every backend; start the worker when ``auto_start``.

        Nothing is created here (a process that only looks at the queue, like the CLI,
        needs no more than read access): the indexes and the spool are made when the
        worker starts or the first operation is queued.
        """
        cfg = self.config
        self.queues = [
            QueueRepo(
                backend.client[cfg.database],
                cfg.queue_collection,
                cfg.dead_letter_collection,
                cfg.keep_done_seconds,
            )
            for backend in self._chronos.backends
        ]
        self._ready = [False] * len(self.queues)
        if cfg.spool_dir is not None:
            self.spool = Spool(cfg.spool_dir)
        if cfg.auto_start:
            await self.start_worker()

    async def _prepare(self, queue: QueueRepo) -> None:
        """Create the indexes of ``queue`` once per instance."""
        index = self.queues.index(queue)
        if not self._ready[index]:
            await queue.ensure_indexes()
            self._ready[index] = True

    async def close(self) -> None:
        """Stop the worker (bounded by ``fallback.stop_ms``) and the watcher of ``wait``."""
        if self._worker is not None:
            await self._worker.stop(self.config.stop_ms / 1000)
        await self.watch.close()

    async def start_worker(self) -> None:
        """Start applying queued operations (a no-op when the worker runs).

        First it creates the queue's indexes, opens the spool and finishes any move to
        the dead letters that a crash interrupted.
        """
        cfg = self.config
        self._chronos._check_open()
        for queue in self.queues:
            await self._prepare(queue)
            await queue.settle_dead()
        if self.spool is not None:
            await self.spool.open()
        if self._worker is None:
            self._worker = FallbackWorker(self, f"{self._chronos.owner}:fallback")
        self._worker.start()
        log.info("fallback worker started (concurrency %d)", cfg.concurrency)

    async def stop_worker(self) -> None:
        """Stop the worker: the operations it runs get ``fallback.stop_ms`` to finish,
        then are cancelled and handed back to the queue (none is lost)."""
        if self._worker is not None:
            await self._worker.stop(self.config.stop_ms / 1000)

    @property
    def worker_running(self) -> bool:
        """Whether this instance's worker runs."""
        return self._worker is not None and self._worker.running

    # -- producing ---------------------------------------------------------------------

    def collection(self, name: str, *, db: str, tenant: str | None = None) -> QueuedCollection:
        """A handle of collection ``name`` whose writes queue when they cannot be applied."""
        self._check()
        return QueuedCollection(self._chronos.collection(name, db=db, tenant=tenant), self)

    def plain_collection(self, doc: Mapping[str, Any]) -> Collection:
        """The ordinary handle an operation document applies to."""
        return self._chronos.collection(doc["collection"], db=doc["db"], tenant=doc["tenant"])

    def _queue_of(self, db: str, collection: str, tenant: str | None) -> QueueRepo:
        backend = self._chronos.backend_for(db=db, collection=collection, tenant=tenant)
        return self.queues[backend.index]

    async def enqueue(
        self,
        *,
        op_id: str,
        op: Operation,
        scope: Scope,
        item_id: str,
        args: Doc,
        key: str,
        cause: BaseException,
    ) -> QueuedWrite:
        """Store a failed write in the queue (or the spool); its :class:`QueuedWrite`.

        Raises the write's own error, chained, when it can be stored nowhere.
        """
        cfg = self.config
        now = now_us()
        delay = retry_delay_s(1, base_ms=cfg.base_delay_ms, max_ms=cfg.max_delay_ms)
        doc: Doc = {
            "_id": op_id,
            "state": "queued",
            "op": op,
            "tenant": scope.tenant,
            "db": scope.db,
            "collection": scope.collection,
            "args": args,
            "key": key,
            "attempts": 0,
            "next_us": now + int(delay * 1e6),
            "created_us": now,
            "last_error": error_doc(cause),
            "owner": None,
        }
        spooled = False
        queue = self._queue_of(scope.db, scope.collection, scope.tenant)
        try:
            await self._prepare(queue)
            await queue.enqueue(doc)
        except StorageError as exc:
            if self.spool is None:
                raise StorageError(
                    f"{op} of {scope.where(item_id)} failed and could not be queued: MongoDB "
                    f"did not answer ({exc}) and no fallback.spool_dir is configured",
                    retryable=True,
                ) from cause
            await self.spool.open()
            await self.spool.append(doc)
            spooled = True
        self.wake.set()
        log.info("fallback: %s queued (%s): %s", op_id, op, cause)
        return QueuedWrite(
            op_id=op_id,
            id=item_id,
            op=op,
            queued_at=from_us(now),
            reason=f"{type(cause).__name__}: {cause}",
            spooled=spooled,
        )

    async def move_spool(self) -> int:
        """Move the journal's operations into the MongoDB queue; how many were moved."""
        if self.spool is None:
            return 0
        moved = 0
        for doc in await self.spool.pending(100):
            queue = self._queue_of(doc["db"], doc["collection"], doc.get("tenant"))
            try:
                await queue.enqueue(doc)
            except StorageError:
                break  # MongoDB still away
            await self.spool.remove(str(doc["_id"]))
            moved += 1
        if moved:
            log.info("fallback: moved %d operation(s) from the spool to MongoDB", moved)
        return moved

    # -- following an operation -------------------------------------------------------

    def notify(self, op_id: str) -> None:
        """Wake the ``wait`` calls of this process for ``op_id`` (it finished, or moved)."""
        self.watch.notify(op_id)

    async def status(self, op_id: str) -> FallbackOp | None:
        """Where operation ``op_id`` stands, or ``None`` when it is unknown (or expired).

        Raises :class:`StorageError` when a backend that might hold it does not answer.
        """
        self._check()
        return await self.watch.status(op_id)

    async def wait(
        self,
        op_id: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (the documented contract)
    ) -> WriteResult:
        """The final :class:`WriteResult` of a queued operation, once it is applied.

        Raises :class:`DeadLetterError` (it will not be applied: why is in the error),
        :class:`OperationCancelledError`, :class:`NotFoundError` (no such operation),
        or :class:`OperationPendingError` when ``timeout`` seconds pass first. A worker
        of this process wakes the call as soon as it finishes the operation; one of
        another process is noticed by a poll of every waited operation at once.
        """
        self._check()
        return await self.watch.wait(op_id, timeout=timeout)

    # -- operating the queue ---------------------------------------------------------

    async def get_queue_stats(self) -> QueueStats:
        """Counts over every backend's queue and the local journal."""
        self._check()
        totals = {"queued": 0, "running": 0, "done": 0, "cancelled": 0, "dead": 0}
        oldest: int | None = None
        by_op: dict[str, int] = {}
        for queue in self.queues:
            counts = await queue.counts()
            for state in totals:
                totals[state] += counts.get(state, 0)
            for op, n in (await queue.unfinished_by_op()).items():
                by_op[op] = by_op.get(op, 0) + n
            first = await queue.oldest_unfinished_us()
            if first is not None:
                oldest = first if oldest is None else min(oldest, first)
        spooled = 0 if self.spool is None else await self.spool.count()
        return QueueStats(
            queued=totals["queued"],
            running=totals["running"],
            done=totals["done"],
            cancelled=totals["cancelled"],
            dead=totals["dead"],
            spooled=spooled,
            oldest_waiting_s=0.0 if oldest is None else max(0.0, (now_us() - oldest) / 1e6),
            by_op=by_op,
        )

    async def get_dead_letter_ops(
        self, filter: Mapping[str, Any] | None = None, limit: int = 100
    ) -> list[FallbackOp]:
        """Dead letters of every backend, newest first, filtered by ``op``, ``tenant``,
        ``db`` and ``collection`` (other keys raise :class:`ValidationError`)."""
        self._check()
        wanted = dict(filter or {})
        unknown = sorted(set(wanted) - _DEAD_FILTERS)
        if unknown:
            raise ValidationError(
                f"unknown dead-letter filter keys {unknown}; use {sorted(_DEAD_FILTERS)}"
            )
        if isinstance(limit, bool) or not isinstance(limit, int) or not 0 < limit <= 10_000:
            raise ValidationError("limit must be an integer from 1 to 10000")
        found: list[Doc] = []
        for queue in self.queues:
            found.extend(await queue.dead_letters(wanted, limit))
        found.sort(key=lambda d: int(d.get("failed_us") or 0), reverse=True)
        return [op_from_doc({**d, "args": d.get("args", {})}, "dead") for d in found[:limit]]

    async def retry_dead_letter(self, op_id: str) -> bool:
        """Queue a dead letter again (due now, attempts reset); False if there is none.

        It keeps its op id and idempotency key: once the cause is fixed it is applied
        once, and ``wait(op_id)`` gives its result.
        """
        self._check()
        for queue in self.queues:
            if await queue.revive(op_id, now_us()):
                self.wake.set()
                return True
        return False

    async def cancel_op(self, op_id: str) -> bool:
        """Cancel an operation that waits (queued, or in the journal); False when it is
        running, finished or unknown."""
        self._check()
        if self.spool is not None and await self.spool.remove(op_id):
            return True
        for queue in self.queues:
            if await queue.cancel(op_id, now_us()):
                self.notify(op_id)
                return True
        return False
