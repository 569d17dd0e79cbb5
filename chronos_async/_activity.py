"""Writes in flight and the clean-ups they leave running: what a bounded close waits for.

Every write registers here for its duration (:meth:`Activity.write`). A write that fails
or is cancelled undoes what it did in a clean-up task (:meth:`Activity.settle`): the
clean-up is shielded, so a second cancellation of the caller cannot cut it short, and it
is tracked here, so it never outlives the :class:`~chronos_async.Chronos` instance.

Closing (:meth:`Activity.drain`) refuses new writes, lets the writes in flight finish for
up to ``deadlines.close_ms``, then cancels the rest through the timeout scope each of
them runs in (the caller gets :class:`~chronos_async.ClosedError`, and the write's own
clean-up withdraws its claim and frees its lease), and finally waits for every clean-up.
Only then are the MongoDB clients and payload stores closed, so no clean-up ever finds
its client gone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from chronos_async._errors import ClosedError

__all__ = ["Activity"]

T = TypeVar("T")
log = logging.getLogger("chronos_async")


class Activity:
    """The writes and clean-ups of one Chronos instance."""

    def __init__(self) -> None:
        self._writes: dict[object, asyncio.Timeout] = {}
        self._cleanups: set[asyncio.Task[Any]] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self.closing = False

    @property
    def writes_in_flight(self) -> int:
        """How many writes are running now."""
        return len(self._writes)

    @asynccontextmanager
    async def write(self, what: str) -> AsyncIterator[None]:
        """Run one write; :meth:`drain` may cancel it (it then raises ClosedError)."""
        if self.closing:
            raise ClosedError(f"this Chronos instance is closing; {what} was not started")
        scope = asyncio.timeout(None)
        token = object()
        try:
            async with scope:
                self._writes[token] = scope
                self._idle.clear()
                try:
                    yield
                finally:
                    del self._writes[token]
                    if not self._writes:
                        self._idle.set()
        except TimeoutError as exc:
            if not scope.expired():
                raise  # the write's own timeout (LockTimeoutError is a TimeoutError too)
            raise ClosedError(
                f"this Chronos instance closed while {what} was in flight; it was withdrawn "
                "(or, if it had already been published, it stands)"
            ) from exc

    async def settle(self, cleanup: Coroutine[Any, Any, T]) -> T:
        """Run ``cleanup`` to the end even if the caller is cancelled meanwhile.

        The caller waits for it; a cancellation of the caller interrupts only the
        waiting (``CancelledError`` propagates), never the clean-up, which :meth:`drain`
        awaits before the backends close.
        """
        task = asyncio.ensure_future(cleanup)
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)
        return await asyncio.shield(task)

    async def drain(self, *, close_seconds: float, cleanup_seconds: float) -> None:
        """Refuse new writes, let running ones finish, cancel the late, await clean-ups."""
        self.closing = True
        if self._writes:
            try:
                async with asyncio.timeout(close_seconds):
                    await self._idle.wait()
            except TimeoutError:
                late = list(self._writes.values())
                log.warning("closing: cancelling %d write(s) still in flight", len(late))
                now = asyncio.get_running_loop().time()
                for scope in late:
                    scope.reschedule(now)
                try:
                    async with asyncio.timeout(cleanup_seconds):
                        await self._idle.wait()
                except TimeoutError:
                    log.error("closing: %d write(s) did not stop in time", len(self._writes))
        pending = list(self._cleanups)
        if pending:
            _, late_cleanups = await asyncio.wait(pending, timeout=cleanup_seconds)
            if late_cleanups:
                log.error("closing: %d clean-up(s) did not finish in time", len(late_cleanups))
