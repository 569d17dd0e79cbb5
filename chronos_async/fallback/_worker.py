"""The fallback worker: claim a due operation, apply it, record the outcome; repeat.

One asyncio task per :class:`~chronos_async.Chronos` instance (started with the
instance when ``fallback.auto_start``, else by ``start_worker()``), running up to
``fallback.concurrency`` operations at a time in a task group. For each one:

1. claim it (:meth:`QueueRepo.claim`: one ``find_one_and_update`` sets the state, the
   claim and the attempt count together), from any backend's queue, after moving what
   the local journal holds into MongoDB once it answers again;
2. apply it through the ordinary write path with its idempotency key, always looking
   for a version an earlier attempt may have published (``key_use=key_use``): an
   operation is applied once however many attempts it takes;
3. record the outcome under the claim: done (with its result); or due again after an
   exponential backoff with full jitter, if the error may pass and attempts remain; or
   moved to the dead letters with its reason (a version conflict, a deleted record, or
   ``max_attempts`` spent).

Stopping waits up to ``fallback.stop_ms`` for the operations in flight, then cancels
them: a cancelled write withdraws, and its claim is handed back (due at once), so
another worker (or the next start) applies it. Nothing is lost: an operation leaves the
queue only as done, cancelled or dead-lettered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from chronos_async._enrich import enrich
from chronos_async._errors import StorageError
from chronos_async._models import WriteResult, result_to_doc
from chronos_async._restore import restore_object
from chronos_async._scope import now_us
from chronos_async._write import KeyUse
from chronos_async.fallback._ops import decode_data, error_doc, is_worth_retrying, retry_delay_s
from chronos_async.fallback._queue import QueueRepo

if TYPE_CHECKING:
    from chronos_async.fallback._service import Fallback

__all__ = ["FallbackWorker"]

Doc = dict[str, Any]
log = logging.getLogger("chronos_async.fallback")


def _key_use(doc: Doc) -> KeyUse:
    """How an attempt uses the operation's key. It always looks for a version an
    earlier attempt may have written (or a concurrent one, if a claim expired while its
    worker still ran); a key made for the operation needs no reservation for that (the
    record's lease serializes its attempts), a caller's own key does (the caller may
    retry it meanwhile)."""
    return "replay" if str(doc["key"]).startswith("op:") else "resume"


class FallbackWorker:
    """The worker task of one :class:`~chronos_async.fallback.Fallback` service."""

    def __init__(self, service: Fallback, owner: str) -> None:
        self._service = service
        self._owner = owner
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._spool_checked = 0.0
        #: Operations applied, rescheduled and dead-lettered by this worker.
        self.counts = {"applied": 0, "rescheduled": 0, "dead": 0}

    @property
    def running(self) -> bool:
        """Whether the worker task runs."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start the worker task (a no-op when it runs)."""
        if self.running:
            return
        self._stopping = asyncio.Event()
        self._task = asyncio.create_task(self._main(), name="chronos-fallback-worker")

    async def stop(self, bound_s: float) -> None:
        """Stop claiming; wait up to ``bound_s`` for the operations in flight, then cancel
        them (each hands its claim back). Returns once the task has ended."""
        task = self._task
        if task is None:
            return
        self._stopping.set()
        self._service.wake.set()
        done, _ = await asyncio.wait({task}, timeout=bound_s)
        if not done:
            log.warning("fallback worker: cancelling the operations still running")
            task.cancel()
            await asyncio.wait({task}, timeout=self._service.cleanup_bound_s)
        self._task = None
        if task.done() and not task.cancelled() and task.exception() is not None:
            log.error("fallback worker ended with %r", task.exception())

    async def _main(self) -> None:
        cfg = self._service.config
        slots = asyncio.Semaphore(cfg.concurrency)
        async with asyncio.TaskGroup() as group:
            while not self._stopping.is_set():
                await slots.acquire()
                try:
                    claimed = await self._next()
                except Exception as exc:  # MongoDB away: try again after a pause
                    log.info("fallback worker: cannot claim (%s); retrying", exc)
                    claimed = None
                if claimed is None:
                    slots.release()
                    await self._idle(cfg.poll_ms / 1000)
                    continue
                group.create_task(self._run(*claimed, slots))

    async def _idle(self, seconds: float) -> None:
        """Wait for a poll period, a newly queued operation, or the stop."""
        wake = self._service.wake
        if wake.is_set():
            wake.clear()
            return
        waiters = {asyncio.ensure_future(wake.wait()), asyncio.ensure_future(self._stopping.wait())}
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)
        wake.clear()

    async def _next(self) -> tuple[Doc, QueueRepo] | None:
        """Claim the next due operation of any backend (after moving the journal)."""
        service = self._service
        if service.spool is not None and time.monotonic() - self._spool_checked > 0.2:
            self._spool_checked = time.monotonic()
            await service.move_spool()
        claim_us = service.config.claim_ms * 1000
        for queue in service.queues:
            try:
                doc = await queue.claim(self._owner, now_us(), claim_us)
            except StorageError as exc:
                log.info("fallback worker: a queue did not answer (%s)", exc)
                continue
            if doc is not None:
                return doc, queue
        return None

    async def _run(self, doc: Doc, queue: QueueRepo, slots: asyncio.Semaphore) -> None:
        op_id = str(doc["_id"])
        try:
            try:
                async with self._keeping_claim(queue, op_id):
                    result = await self._apply(doc)
            except asyncio.CancelledError:
                # Stopping: hand the claim back so the operation is due again at once.
                with contextlib.suppress(Exception):
                    await self._service.activity.settle(queue.release(op_id, self._owner, now_us()))
                raise
            except Exception as exc:
                await self._failed(doc, queue, exc)
                return
            try:
                await queue.finish(op_id, self._owner, result_to_doc(result))
                self.counts["applied"] += 1
            except StorageError as exc:
                # Applied, not recorded: the claim expires, the next attempt finds the
                # version by its idempotency key and records it then.
                log.info("fallback worker: %s applied, not recorded yet (%s)", op_id, exc)
            self._service.notify(op_id)
        finally:
            slots.release()

    @contextlib.asynccontextmanager
    async def _keeping_claim(self, queue: QueueRepo, op_id: str) -> AsyncIterator[None]:
        """Extend the claim every third of ``claim_ms`` while the block runs, so a long
        attempt is not taken over by another worker meanwhile (if it is anyway, after a
        stall, the replay under the record's lease keeps the operation applied once)."""
        claim_us = self._service.config.claim_ms * 1000

        async def keep() -> None:
            while True:
                await asyncio.sleep(claim_us / 3e6)
                with contextlib.suppress(StorageError):
                    await queue.extend(op_id, self._owner, now_us() + claim_us)

        keeper = asyncio.create_task(keep(), name="chronos-fallback-claim")
        try:
            yield
        finally:
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)

    async def _failed(self, doc: Doc, queue: QueueRepo, exc: Exception) -> None:
        cfg = self._service.config
        op_id, attempts = str(doc["_id"]), int(doc.get("attempts", 1))
        error = error_doc(exc)
        try:
            if is_worth_retrying(exc) and attempts < cfg.max_attempts:
                delay = retry_delay_s(attempts, base_ms=cfg.base_delay_ms, max_ms=cfg.max_delay_ms)
                await queue.reschedule(op_id, self._owner, now_us() + int(delay * 1e6), error)
                self.counts["rescheduled"] += 1
                return
            if is_worth_retrying(exc):
                tries = f"{attempts} attempt{'s' if attempts != 1 else ''}"
                reason = f"gave up after {tries}; last: {error['type']}: {exc}"
            else:
                reason = f"{error['type']}: {exc}"
            await queue.dead_letter(doc, self._owner, reason, error, now_us())
            self.counts["dead"] += 1
            log.warning("fallback: %s moved to the dead letters: %s", op_id, reason)
        except StorageError as record_error:
            log.info("fallback worker: outcome of %s not recorded (%s)", op_id, record_error)
        self._service.notify(op_id)

    async def _apply(self, doc: Doc) -> WriteResult:
        """Apply one operation through the ordinary write path (see the module doc)."""
        coll = self._service.plain_collection(doc)
        writer = coll._writer
        args, key, op = doc["args"], str(doc["key"]), doc["op"]
        key_use = _key_use(doc)
        if op == "create":
            return await writer.create(
                decode_data(args["data"]),
                actor=args.get("actor"),
                reason=args.get("reason"),
                item_id=args["id"] if args.get("given") else None,
                parent_id=args.get("parent_id"),
                origin_id=args.get("origin_id"),
                idempotency_key=key,
                key_use=key_use,
                chosen_id=args["id"],
            )
        if op == "update":
            return await writer.update(
                args["id"],
                decode_data(args["data"]),
                expected_ov=args.get("expected_ov"),
                actor=args.get("actor"),
                reason=args.get("reason"),
                idempotency_key=key,
                key_use=key_use,
            )
        if op == "delete":
            return await writer.delete(
                args["id"],
                expected_ov=args.get("expected_ov"),
                actor=args.get("actor"),
                reason=args.get("reason"),
                idempotency_key=key,
                key_use=key_use,
            )
        if op == "enrich":
            return await enrich(
                writer,
                args["id"],
                [decode_data(p) for p in args["patches"]],
                function_id=args.get("function_id"),
                actor=args.get("actor"),
                reason=args.get("reason"),
                expected_ov=args.get("expected_ov"),
                idempotency_key=key,
                key_use=key_use,
            )
        return await restore_object(
            writer,
            args["id"],
            ov=args.get("ov"),
            at=args.get("at"),
            actor=args.get("actor"),
            reason=args.get("reason"),
            expected_ov=args.get("expected_ov"),
            idempotency_key=key,
            key_use=key_use,
        )
