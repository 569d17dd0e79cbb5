"""The background rollup: a task owned by :class:`~chronos_async.Chronos`.

With ``rollup.enabled`` and ``rollup.auto_schedule``, ``Chronos`` enters a
:class:`RollupService` on its exit stack. Every ``rollup.interval_seconds`` it takes the
``rollup`` lease (a document with expiry in the fallback database of the first backend,
so one process of a deployment runs at a time; the lease is renewed between
collections and outlives a crashed holder by at most its length), runs
``admin.rollup_now()`` and ``admin.prune_now()``, and gives the lease back. Closing the
instance cancels the task and waits for it (bounded by ``deadlines.close_ms``): a
rollup cancelled half-way is resumed by the next run (every step is idempotent).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from types import TracebackType
from typing import TYPE_CHECKING

from chronos_async._errors import ChronosError
from chronos_async._scope import now_us
from chronos_async.meta._rollup import LifecycleLease

if TYPE_CHECKING:
    from chronos_async._client import Chronos

__all__ = ["RollupService"]

log = logging.getLogger("chronos_async.lifecycle")


class RollupService:
    """Runs rollup and prune periodically while the instance is open (one process at a
    time, by lease). An async context manager; never fire-and-forget."""

    def __init__(self, chronos: Chronos) -> None:
        self._chronos = chronos
        self._task: asyncio.Task[None] | None = None
        self.runs = 0
        self.last_error: str | None = None

    @property
    def _interval(self) -> float:
        return float(self._chronos.config.rollup.interval_seconds)

    def _lease(self) -> LifecycleLease:
        backend = self._chronos.backends[0]
        fallback = self._chronos.config.fallback
        database = fallback.database if fallback is not None else "chronos_system"
        return LifecycleLease(backend.client[database], "rollup")

    async def __aenter__(self) -> RollupService:
        self._task = asyncio.create_task(self._loop(), name="chronos-rollup")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        bound = max(self._chronos.config.deadlines.close_ms / 1000, 0.1)
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), bound)
        if self._chronos.backends:
            with contextlib.suppress(ChronosError):
                await self._lease().release(self._chronos.owner)

    async def run_once(self) -> bool:
        """One round under the lease; False when another process holds it."""
        lease = self._lease()
        ttl_us = int(max(self._interval, 60.0) * 1e6)
        owner = self._chronos.owner
        if not await lease.take(owner, now_us(), ttl_us):
            return False
        try:
            await self._chronos.admin.rollup_now()
            await lease.take(owner, now_us(), ttl_us)  # renew between the two
            await self._chronos.admin.prune_now()
        finally:
            with contextlib.suppress(ChronosError):
                await lease.release(owner)
        self.runs += 1
        return True

    async def _loop(self) -> None:
        # Not at once: an instance that opens and closes quickly (a script, a test)
        # should not pay for a rollup.
        await asyncio.sleep(min(self._interval, 30.0))
        while True:
            try:
                await self.run_once()
                self.last_error = None
            except ChronosError as exc:  # a bad round is logged; the next one retries
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("background rollup failed: %s", self.last_error)
            await asyncio.sleep(self._interval)
