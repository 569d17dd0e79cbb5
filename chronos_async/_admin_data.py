"""The data side of the operator tools: counters (recount, drift), retention (rollup,
prune, expire) and GDPR purge, as thin delegations to :mod:`chronos_async.counters` and
:mod:`chronos_async.lifecycle`. :class:`~chronos_async.Admin` inherits them."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from chronos_async._errors import ConfigError
from chronos_async._keys import validate_collection, validate_db
from chronos_async._telemetry import traced
from chronos_async._verify import Problem
from chronos_async.counters import RecountReport
from chronos_async.lifecycle import ExpireReport, PruneReport, PurgeReport, RollupReport
from chronos_async.lifecycle._ops import run_expire, run_prune, run_rollup
from chronos_async.lifecycle._purge import purge_record
from chronos_async.lifecycle._reports import LifecycleProgress
from chronos_async.meta import RecordRepo, mongo_errors

if TYPE_CHECKING:
    from chronos_async._client import Backend, Chronos

__all__ = ["DataAdmin"]

_SYSTEM_DBS = frozenset({"admin", "local", "config"})


class DataAdmin:
    """Counters, retention and purge operations (the base of :class:`~chronos_async.Admin`)."""

    def __init__(self, chronos: Chronos) -> None:
        self._chronos = chronos

    async def _targets(
        self, db: str | None, collection: str | None
    ) -> dict[tuple[str, str], list[tuple[Backend, RecordRepo]]]:
        """Every collection to check, with the backends that hold it (``*_head``), filtered.

        Keyed by ``(db, collection)`` in sorted order: one collection is checked over all
        its backends at once, because backends may share a payload store.
        """
        self._chronos._check_open()
        if db is not None:
            validate_db(db)
        if collection is not None:
            validate_collection(collection)
        targets: dict[tuple[str, str], list[tuple[Backend, RecordRepo]]] = {}
        for backend in self._chronos.backends:
            with mongo_errors("database listing"):
                names = [db] if db is not None else await backend.client.list_database_names()
            for name in names:
                if name in _SYSTEM_DBS:
                    continue
                with mongo_errors("collection listing"):
                    collections = await backend.client[name].list_collection_names()
                for coll in sorted(
                    c.removesuffix("_head") for c in collections if c.endswith("_head")
                ):
                    if collection is None or coll == collection:
                        repo = RecordRepo(backend.client[name], coll)
                        targets.setdefault((name, coll), []).append((backend, repo))
        return dict(sorted(targets.items()))

    # -- counters (chronos_async.counters) ------------------------------------------

    async def _counter_drift(self, db: str | None, collection: str | None) -> tuple[Problem, ...]:
        found = []
        for holders in (await self._targets(db, collection)).values():
            for backend, repo in holders:
                found.extend(await self._chronos.counters.drift(backend, repo))
        return tuple(
            Problem(
                "counter_drift",
                d.db,
                d.collection,
                d.tenant,
                None,
                None,
                f"{d.field} is {d.stored}, the version index gives {d.expected} "
                "(transient while writes run; admin.recount() rebuilds it)",
            )
            for d in found
        )

    @traced("admin.recount")
    async def recount(self, db: str | None = None, collection: str | None = None) -> RecountReport:
        """Rebuild the counters of ``db`` (all databases when ``None``) from the version
        index and the heads, under the rules in force now (see :mod:`chronos_async.counters`).

        Use it after a crash (a process's unapplied increments are lost), after adding or
        changing ``counter_rules``, or when :meth:`verify` reports ``counter_drift``.
        Exact when no write to the collection runs meanwhile; writes during a recount may
        be missed or counted twice (run it again).

        Example::

            report = await chronos.admin.recount(db="app", collection="users")
            print(report.totals, report.versions, report.corrected)
        """
        counters = self._chronos.counters
        if not counters.enabled:
            raise ConfigError("counters are off: add a 'counters' section or 'counter_rules'")
        total = RecountReport()
        for holders in (await self._targets(db, collection)).values():
            for backend, repo in holders:
                total += await counters.recount(backend, repo)
        return total

    @traced("admin.purge")
    async def purge(
        self,
        *,
        db: str,
        collection: str,
        id: str,
        tenant: str | None = None,
        reason: str,
        actor: str | None = None,
    ) -> PurgeReport:
        """Remove record ``id`` everywhere, for good (GDPR erasure), and leave a tombstone.

        Head, every version (live and rolled up), payloads, content objects, manifests,
        pack members (packs are rewritten), queued fallback writes, idempotency keys and
        unique-set entries go; the tombstone in ``<collection>_purged`` keeps who, when
        and why, with the id only as a hash. Needs ``hard_delete_enabled``. Idempotent:
        running it again finishes an interrupted purge. See
        :mod:`chronos_async.lifecycle._purge`.

        Example::

            report = await chronos.admin.purge(
                db="app", collection="users", id=uid, reason="GDPR request #123", actor="dpo"
            )
        """
        self._chronos._check_open()
        return await purge_record(
            self._chronos,
            db=db,
            collection=collection,
            item_id=id,
            tenant=tenant,
            actor=actor,
            reason=reason,
        )

    def _counted(self, repo: RecordRepo, tenant: str | None, version: dict[str, Any]) -> None:
        counting = self._chronos.counters.counting_for_repo(repo, tenant)
        if counting is not None:
            counting.published(version)

    # -- retention and rollup (chronos_async.lifecycle) --------------------------------

    @traced("admin.rollup_now")
    async def rollup_now(
        self,
        db: str | None = None,
        collection: str | None = None,
        *,
        progress: LifecycleProgress | None = None,
    ) -> RollupReport:
        """Move the versions beyond each collection's retention rule from the live index
        into manifests (idempotent, resumable, safe while the application writes).

        ``progress(done, total)`` is called after each record. Example::

            report = await chronos.admin.rollup_now(db="myapp", collection="users")
            print(report.versions_rolled, report.manifests_written)
        """
        return await run_rollup(self._chronos, await self._targets(db, collection), progress)

    @traced("admin.prune_now")
    async def prune_now(
        self,
        db: str | None = None,
        collection: str | None = None,
        *,
        grace_seconds: float = 600.0,
        progress: LifecycleProgress | None = None,
    ) -> PruneReport:
        """Finish interrupted rollups: trim index entries already in manifests, delete
        manifest objects no catalog entry names (older than ``grace_seconds``). Never
        removes history (that is :meth:`expire`)."""
        targets = await self._targets(db, collection)
        return await run_prune(self._chronos, targets, grace_seconds, progress)

    @traced("admin.expire")
    async def expire(
        self,
        db: str | None = None,
        collection: str | None = None,
        *,
        before: datetime | str,
        keep_last: int = 1,
        progress: LifecycleProgress | None = None,
    ) -> ExpireReport:
        """Delete, for good, the versions committed before ``before`` (all but the newest
        ``keep_last`` of each record; never the current one) and the payloads no
        remaining version refers to. The report says how many versions and bytes went.

        Example::

            report = await chronos.admin.expire(
                db="myapp", collection="users", before="2025-01-01T00:00:00Z", keep_last=5
            )
            print(report.versions_removed, report.bytes_removed)
        """
        targets = await self._targets(db, collection)
        return await run_expire(
            self._chronos, targets, before=before, keep_last=keep_last, progress=progress
        )
