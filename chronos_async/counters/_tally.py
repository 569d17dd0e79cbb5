"""Counter increments merged in memory and applied to MongoDB in batches.

A published write hands its contribution to the :class:`Tally` and returns; it never
waits for the counters. A flusher task (owned by the ``Chronos`` lifecycle) applies the
merged increments: as soon as any are pending, or once per
``write_optimization.debounce_counters_ms`` when that is set. Increments that arrive while
a flush runs join the next one, so under load a flush applies the writes of many records
in one round trip per totals database (group commit).

:meth:`Tally.flush` applies everything pending now (``get_totals`` calls it first, so a
process always reads its own writes). On exit the flusher stops and a last flush runs,
retried within ``deadlines.close_ms``: a clean shutdown loses nothing. A crash loses the
increments not yet applied (at most one debounce interval of this process's writes);
``admin.recount()`` rebuilds the totals from the version index, and ``admin.verify()``
reports the drift.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from chronos_async._errors import StorageError
from chronos_async.meta import TotalsRepo, UniqueFact

__all__ = ["Tally"]

log = logging.getLogger("chronos_async.counters")
_RETRY_S = (0.05, 0.2, 1.0, 2.0)


@dataclass(slots=True)
class _Pending:
    repo: TotalsRepo
    ident: Mapping[str, Any]
    counts: Counter[str] = field(default_factory=Counter)
    uniques: set[UniqueFact] = field(default_factory=set)

    def merge(self, counts: Mapping[str, int], uniques: Iterable[UniqueFact]) -> None:
        self.counts.update(counts)
        self.uniques.update(uniques)


class Tally:
    """Pending counter increments of one ``Chronos`` instance and their flusher."""

    def __init__(self, *, debounce_ms: int, close_seconds: float) -> None:
        self._debounce_s = debounce_ms / 1000
        self._close_s = close_seconds
        self._pending: dict[tuple[int, str], _Pending] = {}
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        #: Increments applied, and flushes that failed (retried), since opening.
        self.applied = 0
        self.failures = 0

    def add(
        self,
        repo: TotalsRepo,
        key: str,
        ident: Mapping[str, Any],
        counts: Mapping[str, int],
        uniques: Iterable[UniqueFact] = (),
    ) -> None:
        """Queue ``counts`` (and unique-set facts) for totals document ``key``."""
        slot = (id(repo), key)
        pending = self._pending.get(slot)
        if pending is None:
            pending = self._pending[slot] = _Pending(repo, ident)
        pending.merge(counts, uniques)
        self._wake.set()

    @property
    def pending(self) -> int:
        """Totals documents with increments not applied yet."""
        return len(self._pending)

    async def flush(self) -> None:
        """Apply every pending increment now (raises :class:`StorageError` if MongoDB
        fails; the increments then stay pending for the next flush)."""
        async with self._lock:
            batch, self._pending = self._pending, {}
            by_repo: dict[int, list[tuple[str, _Pending]]] = {}
            for (repo_id, key), pending in batch.items():
                by_repo.setdefault(repo_id, []).append((key, pending))
            done: set[int] = set()
            try:
                for repo_id, entries in by_repo.items():
                    repo = entries[0][1].repo
                    await repo.apply({key: (p.ident, p.counts) for key, p in entries})
                    for key, p in entries:
                        await repo.add_unique(key, p.uniques)
                    done.add(repo_id)
                    self.applied += len(entries)
            except BaseException:
                # Not applied (or not known to be): keep them for the next flush.
                for repo_id, entries in by_repo.items():
                    if repo_id not in done:
                        for key, p in entries:
                            self.add(p.repo, key, p.ident, p.counts, p.uniques)
                raise

    async def _run(self) -> None:
        failures = 0
        while True:
            await self._wake.wait()
            if self._debounce_s:
                await asyncio.sleep(self._debounce_s)
            self._wake.clear()
            try:
                await self.flush()
                failures = 0
            except StorageError as exc:
                self.failures += 1
                delay = _RETRY_S[min(failures, len(_RETRY_S) - 1)]
                failures += 1
                log.warning("counter flush failed (%s); retrying in %.2fs", exc, delay)
                await asyncio.sleep(delay)
                self._wake.set()

    async def __aenter__(self) -> Tally:
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name="chronos-counter-flusher"
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        deadline = time.monotonic() + self._close_s
        attempt = 0
        while self._pending:
            try:
                await asyncio.wait_for(self.flush(), max(0.001, deadline - time.monotonic()))
            except (StorageError, TimeoutError) as exc:
                if time.monotonic() >= deadline:
                    lost = sum(
                        sum(abs(n) for n in p.counts.values()) for p in self._pending.values()
                    )
                    log.error(
                        "counter increments of %d totals (%d counts) could not be applied "
                        "before closing (%s); run admin.recount() to rebuild them",
                        len(self._pending),
                        lost,
                        exc,
                    )
                    return
                await asyncio.sleep(_RETRY_S[min(attempt, len(_RETRY_S) - 1)])
                attempt += 1
