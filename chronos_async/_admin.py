"""Operator tools: health, verify (read-only check of every invariant), repair and
reconcile (roll stuck versions forward, remove old orphan payloads). The counters,
retention and purge operations come from :class:`~._admin_data.DataAdmin`."""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chronos_async._admin_data import DataAdmin
from chronos_async._content_guard import ContentDeletion
from chronos_async._errors import ChronosError, ValidationError
from chronos_async._pack_admin import pack_settle_us
from chronos_async._reconcile import (
    Compaction,
    ReconcileReport,
    fix_collection,
    referenced_keys,
)
from chronos_async._rollforward import settle_age_us
from chronos_async._telemetry import traced
from chronos_async._verify import (
    CollectionScan,
    ReferenceCheck,
    VerifyProgress,
    VerifyReport,
    scan_collection,
)
from chronos_async.meta import mongo_errors
from chronos_async.storage import BlobStore

if TYPE_CHECKING:
    from chronos_async._client import Backend

__all__ = ["Admin", "BackendHealth", "HealthReport"]

#: Orphan payloads younger than this are assumed to belong to writes in flight.
DEFAULT_GRACE_SECONDS = 3600.0
#: Packs whose live bytes are less than this share of them are rewritten by reconcile.
DEFAULT_COMPACT_BELOW = 0.5


@dataclass(frozen=True, slots=True)
class BackendHealth:
    """The state of one backend: MongoDB and the payload store, each with its latency."""

    index: int
    id: str
    mongo_ok: bool
    mongo_ms: float | None
    store_kind: str
    store_ok: bool
    store_ms: float | None
    transactions: bool
    errors: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class HealthReport:
    """``ok`` is true when every backend answered."""

    ok: bool
    backends: tuple[BackendHealth, ...] = field(default_factory=tuple)


def _check_ratio(value: object, name: str) -> float:
    """A ratio between 0 and 1 (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationError(f"{name} must be a number between 0 and 1")
    if not 0.0 <= float(value) <= 1.0:  # also refuses nan
        raise ValidationError(f"{name} must be between 0 and 1, not {float(value)!r}")
    return float(value)


def _check_grace(value: object) -> float:
    """``grace_seconds`` as a float: a finite, non-negative number (not a bool)."""
    # Only a float is shown: the text of a huge int can itself raise (int_max_str_digits).
    shown = repr(value) if isinstance(value, float) else type(value).__name__
    problem = ValidationError(f"grace_seconds must be a finite, non-negative number, not {shown}")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise problem
    try:
        seconds = float(value)
    except OverflowError:  # an int beyond the float range
        raise problem from None
    if not math.isfinite(seconds) or seconds < 0:
        raise problem
    return seconds


async def _timed(step: Any, seconds: float) -> tuple[bool, float | None, str | None]:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(seconds):
            await step
    except (ChronosError, TimeoutError) as exc:
        return False, None, f"{type(exc).__name__}: {exc}"
    return True, (time.perf_counter() - started) * 1000, None


class Admin(DataAdmin):
    """Administrative operations of a :class:`~chronos_async.Chronos` instance."""

    @traced("admin.health")
    async def health(self, *, check_seconds: float = 5.0) -> HealthReport:
        """Ping every backend's MongoDB and payload store (each check bounded by ``check_seconds``).

        Never raises for an unhealthy backend: the report says what failed. Connection
        strings and credentials never appear in it.
        """
        self._chronos._check_open()
        checks = [self._check(b, check_seconds) for b in self._chronos.backends]
        results = tuple(await asyncio.gather(*checks))
        return HealthReport(ok=all(r.mongo_ok and r.store_ok for r in results), backends=results)

    async def _check(self, backend: Backend, check_seconds: float) -> BackendHealth:
        async def ping() -> None:
            with mongo_errors("ping"):
                await backend.client.admin.command("ping")

        (m_ok, m_ms, m_err), (s_ok, s_ms, s_err) = await asyncio.gather(
            _timed(ping(), check_seconds), _timed(backend.store.ping(), check_seconds)
        )
        return BackendHealth(
            index=backend.index,
            id=backend.id,
            mongo_ok=m_ok,
            mongo_ms=m_ms,
            store_kind=backend.store.kind,
            store_ok=s_ok,
            store_ms=s_ms,
            transactions=backend.transactions,
            errors=tuple(e for e in (m_err, s_err) if e),
        )

    # -- verify / repair / reconcile ---------------------------------------------------

    def _reference_check(self) -> ReferenceCheck:
        """Which payload keys some version or head of any backend still refers to."""
        clients = [backend.client for backend in self._chronos.backends]

        async def still_referenced(store: BlobStore, keys: list[str]) -> set[str]:
            return await referenced_keys(clients, keys, store=store)

        return still_referenced

    async def _scan(
        self,
        db: str | None,
        collection: str | None,
        *,
        check_payloads: bool,
        grace_seconds: float,
        progress: VerifyProgress | None,
    ) -> list[CollectionScan]:
        grace = _check_grace(grace_seconds)
        config = self._chronos.config
        settle_us = (
            settle_age_us(config, create=False),
            settle_age_us(config, create=True),
        )
        check = self._reference_check()
        scans = []
        for (name, coll), holders in (await self._targets(db, collection)).items():
            scan = await scan_collection(
                name,
                coll,
                [(repo, backend.store) for backend, repo in holders],
                settle_us=settle_us,
                grace_seconds=grace,
                check_payloads=check_payloads,
                still_referenced=check,
                progress=progress,
            )
            scans.append(scan)
        return scans

    @traced("admin.verify")
    async def verify(
        self,
        db: str | None = None,
        collection: str | None = None,
        *,
        check_payloads: bool = True,
        grace_seconds: float = DEFAULT_GRACE_SECONDS,
        progress: VerifyProgress | None = None,
    ) -> VerifyReport:
        """Check every invariant over ``db`` (all databases when ``None``), reading only.

        With ``check_payloads`` (default) every payload is fetched and hashed; without it
        only its presence is checked. ``progress(collection, records_checked)`` is
        called as the scan advances. Safe while the application writes.

        Example::

            report = await chronos.admin.verify(db="myapp")
            for problem in report.problems:
                print(problem)
        """
        scans = await self._scan(
            db,
            collection,
            check_payloads=check_payloads,
            grace_seconds=grace_seconds,
            progress=progress,
        )
        problems = tuple(p for scan in scans for p in scan.problems)
        counts: dict[str, int] = {"collections": sum(len(scan.backends) for scan in scans)}
        for scan in scans:
            for key, value in scan.counts.items():
                counts[key] = counts.get(key, 0) + value
        if self._chronos.counters.enabled:
            drift = await self._counter_drift(db, collection)
            counts["counter_drift"] = len(drift)
            problems += drift
        return VerifyReport(problems=problems, counts=counts)

    @traced("admin.repair")
    async def repair(self, db: str | None = None, collection: str | None = None) -> ReconcileReport:
        """Publish versions whose writers died between claim and publication.

        Only claims older than a lease whose record lease is free are touched; the head
        moves by the same compare-and-swap a writer uses.
        """
        total = ReconcileReport()
        check = self._reference_check()
        for scan in await self._scan(
            db, collection, check_payloads=False, grace_seconds=DEFAULT_GRACE_SECONDS, progress=None
        ):
            total += await fix_collection(
                scan,
                remove_orphans=False,
                still_referenced=check,
                settle_create_us=settle_age_us(self._chronos.config, create=True),
                counted=self._counted,
            )
        return total

    @traced("admin.reconcile")
    async def reconcile(
        self,
        db: str | None = None,
        collection: str | None = None,
        *,
        grace_seconds: float = DEFAULT_GRACE_SECONDS,
        compact_below: float = DEFAULT_COMPACT_BELOW,
        progress: VerifyProgress | None = None,
    ) -> ReconcileReport:
        """:meth:`repair`, remove orphan payloads older than ``grace_seconds``, compact packs.

        A payload (or pack) is removed only when no version or head of any backend refers
        to it: backends that share a payload store are judged together, and every
        candidate is looked up on every backend once more right before it is deleted.

        Packs (``write_optimization.batch_s3``) older than ``grace_seconds`` whose live
        bytes are less than ``compact_below`` of their size are rewritten with only the
        payloads some version uses (0 turns compaction off; 1 rewrites every pack with
        any dead byte).
        """
        grace = _check_grace(grace_seconds)
        below = _check_ratio(compact_below, "compact_below")
        config = self._chronos.config
        compaction = Compaction(
            below=below,
            min_age_seconds=max(grace, pack_settle_us(config) / 1e6),
            clients=[backend.client for backend in self._chronos.backends],
        )
        total = ReconcileReport()
        check = self._reference_check()
        for scan in await self._scan(
            db, collection, check_payloads=False, grace_seconds=grace, progress=progress
        ):
            total += await fix_collection(
                scan,
                remove_orphans=True,
                still_referenced=check,
                settle_create_us=settle_age_us(config, create=True),
                compaction=compaction if below > 0 else None,
                counted=self._counted,
                content_deletion=ContentDeletion(compaction.clients, config.deadlines),
            )
        return total
