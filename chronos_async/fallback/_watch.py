"""Following queued operations: where one stands, and waiting for its outcome.

``wait`` calls of one process share one watcher task: it polls every waited operation
in one query per backend (20 ms, growing to 1 s between polls) and wakes the waiters of
those that finished; a worker of the same process wakes them at once. A hundred waits
thus cost one query per poll, not a hundred.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from chronos_async._errors import (
    DeadLetterError,
    NotFoundError,
    OperationCancelledError,
    OperationPendingError,
    StorageError,
)
from chronos_async._models import WriteResult
from chronos_async.fallback._ops import FallbackOp, op_from_doc

if TYPE_CHECKING:
    from chronos_async.fallback._service import Fallback

__all__ = ["OpWatch"]

#: ``status`` could not look everywhere: keep waiting.
_UNREACHABLE: Any = object()
#: The watcher's first and longest pause between polls of the waited operations, and
#: how often a ``wait`` looks by itself anyway (seconds).
_FIRST_PAUSE, _LONGEST_PAUSE, _RECHECK_S = 0.02, 1.0, 10.0


class OpWatch:
    """``status`` and ``wait`` of one :class:`~chronos_async.fallback.Fallback`."""

    def __init__(self, service: Fallback) -> None:
        self._service = service
        self._watcher: asyncio.Task[None] | None = None
        #: Futures of the ``wait`` calls of this process, by op id (resolved by notify).
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}

    async def close(self) -> None:
        """Stop the watcher task."""
        watcher, self._watcher = self._watcher, None
        if watcher is not None and not watcher.done():
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)

    def notify(self, op_id: str) -> None:
        """Wake the ``wait`` calls of this process for ``op_id`` (it finished, or moved)."""
        for waiter in self._waiters.pop(op_id, ()):
            if not waiter.done():
                waiter.set_result(None)

    async def status(self, op_id: str) -> FallbackOp | None:
        """Where operation ``op_id`` stands, or ``None`` when it is unknown (or expired).

        Raises :class:`StorageError` when a backend that might hold it does not answer
        (an operation is never reported unknown without looking everywhere).
        """
        # The journal first: an operation moves from it into a queue (inserted there,
        # then removed here), so looking in this order can never miss it in between.
        if self._service.spool is not None:
            spooled = await self._service.spool.get(op_id)
            if spooled is not None:
                return op_from_doc(spooled, "spooled")
        unreachable: StorageError | None = None
        for queue in self._service.queues:
            try:
                doc, dead = await queue.find(op_id)
            except StorageError as exc:
                unreachable = exc
                continue
            if doc is not None:
                return op_from_doc(doc)
            if dead is not None:
                return op_from_doc(dead, "dead")
        if unreachable is not None:
            raise unreachable
        return None

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
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        state, attempts = "unknown", 0
        while True:
            try:
                found = await self.status(op_id)
            except StorageError:
                found = _UNREACHABLE  # a backend did not answer: keep waiting
            if found is None:
                raise NotFoundError(f"no queued operation {op_id!r}")
            if found is not _UNREACHABLE:
                if found.state == "done" and found.result is not None:
                    return found.result
                if found.state == "dead":
                    raise DeadLetterError(op_id, found.reason or "", found.last_error)
                if found.state == "cancelled":
                    raise OperationCancelledError(f"operation {op_id!r} was cancelled")
                state, attempts = found.state, found.attempts
            pause = _RECHECK_S
            if deadline is not None:
                left = deadline - loop.time()
                if left <= 0:
                    raise OperationPendingError(op_id, state, attempts)
                pause = min(pause, left)
            waiter = loop.create_future()
            self._waiters.setdefault(op_id, set()).add(waiter)
            self._watch()
            try:
                await asyncio.wait({waiter}, timeout=pause)
            finally:
                waiters = self._waiters.get(op_id)
                if waiters is not None:
                    waiters.discard(waiter)
                    if not waiters:
                        del self._waiters[op_id]

    def _watch(self) -> None:
        """Make sure the watcher runs while there are waiters (it ends with the last)."""
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.create_task(self._watching(), name="chronos-fallback-watch")

    async def _watching(self) -> None:
        """Poll the waited operations, all in one query per backend, growing the pause
        from 20 ms to 1 s; wake the waiters of those that are final (or moved)."""
        pause = _FIRST_PAUSE
        while self._waiters:
            await asyncio.sleep(pause)
            pause = min(pause * 2, _LONGEST_PAUSE)
            ids = list(self._waiters)
            try:
                states: dict[str, str] = {}
                for queue in self._service.queues:
                    states.update(await queue.states(ids))
                spooled = (
                    set() if self._service.spool is None else await self._service.spool.which(ids)
                )
            except StorageError:
                continue
            for op_id in ids:
                if op_id in spooled or states.get(op_id) in ("queued", "running"):
                    continue
                self.notify(op_id)  # final, dead-lettered or unknown: its waiter looks
