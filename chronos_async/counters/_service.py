"""``chronos.counters``: collection totals, conditional counters and their repair.

Counting is on when the config has a ``counters`` section or any ``counter_rules``.
Totals live in the ``cnt_total`` collection of ``counters.db_name`` on
``counters.mongo_uri`` when those are set, else next to the records (the record's own
database on its backend).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from chronos_async._errors import ConfigError
from chronos_async._keys import NO_TENANT
from chronos_async._models import Summable, from_us
from chronos_async._scope import now_us
from chronos_async._sections import WriteOptimizationConfig
from chronos_async.counters._counting import Counting, totals_key
from chronos_async.counters._recount import compute_totals
from chronos_async.counters._rules import EVENT_FIELDS, RuleSet
from chronos_async.counters._tally import Tally
from chronos_async.meta import RecordRepo, TotalsRepo, open_client

if TYPE_CHECKING:
    from chronos_async._client import Backend, Chronos

__all__ = ["Counters", "CounterDrift", "RecountReport", "Totals"]

Doc = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Totals:
    """The counters of one collection (of one tenant).

    ``rules`` holds the event counts of ``events`` rules, ``gauges`` the current counts
    of ``gauge`` rules, ``unique`` the distinct values of ``count_unique`` rules.
    ``totals["name"]`` reads any of them (event counts, then rules, gauges, unique).
    """

    db: str
    collection: str
    tenant: str | None
    created: int = 0
    updated: int = 0
    deleted: int = 0
    restored: int = 0
    enriched: int = 0
    rules: Mapping[str, int] = field(default_factory=dict)
    gauges: Mapping[str, int] = field(default_factory=dict)
    unique: Mapping[str, int] = field(default_factory=dict)
    #: When :meth:`Counters.reset_totals` last zeroed the event counts.
    reset_at: datetime | None = None

    def __getitem__(self, name: str) -> int:
        if name in EVENT_FIELDS.values():
            return int(getattr(self, name))
        for part in (self.rules, self.gauges, self.unique):
            if name in part:
                return part[name]
        raise KeyError(name)

    def as_dict(self) -> dict[str, int]:
        """The counts as one flat mapping (the original's ``getTotals`` shape)."""
        out = {name: int(getattr(self, name)) for name in EVENT_FIELDS.values()}
        out.update(self.rules)
        out.update(self.gauges)
        out.update({f"{name}_unique": n for name, n in self.unique.items()})
        return out


@dataclass(frozen=True, slots=True)
class CounterDrift:
    """A totals field that differs from what the version index says."""

    db: str
    collection: str
    tenant: str | None
    field: str
    stored: int
    expected: int


@dataclass(frozen=True, slots=True)
class RecountReport(Summable):
    """What :meth:`Counters.recount` rebuilt: totals documents, records and versions
    replayed, and the fields it corrected."""

    totals: int = 0
    records: int = 0
    versions: int = 0
    corrected: tuple[CounterDrift, ...] = ()


class Counters:
    """Totals per (tenant, database, collection): ``created``, ``updated``, ``deleted``,
    ``restored``, ``enriched`` and one count per ``counter_rules`` rule."""

    def __init__(self, chronos: Chronos) -> None:
        self._chronos = chronos
        config = chronos.config
        #: Whether writes are counted (a ``counters`` section or any rule).
        self.enabled = config.counters is not None or bool(config.counter_rules.rules)
        self._tally: Tally | None = None
        self._client: Any = None
        self._rules: dict[str, RuleSet] = {}
        self._ready: dict[tuple[int, str], asyncio.Future[None]] = {}

    async def open(self, stack: AsyncExitStack) -> None:
        """Start counting (entered on the instance's exit stack, after the backends)."""
        if not self.enabled:
            return
        config = self._chronos.config
        section = config.counters
        if section is not None and section.mongo_uri is not None:
            self._client = await stack.enter_async_context(
                open_client(
                    section.mongo_uri, config.mongo_client, op_timeout_ms=config.deadlines.mongo_ms
                )
            )
        section_wo = config.write_optimization or WriteOptimizationConfig()
        debounce = section_wo.debounce_counters_ms
        self._tally = await stack.enter_async_context(
            Tally(debounce_ms=debounce, close_seconds=config.deadlines.close_ms / 1000)
        )

    # -- the write path ----------------------------------------------------------------

    def rules_for(self, collection: str) -> RuleSet:
        """The compiled rules that apply to ``collection``."""
        rules = self._rules.get(collection)
        if rules is None:
            rules = self._rules[collection] = RuleSet.from_config(
                self._chronos.config.counter_rules, collection
            )
        return rules

    def _repo(self, backend: Backend, db: str) -> TotalsRepo:
        section = self._chronos.config.counters
        client = self._client if self._client is not None else backend.client
        name = section.db_name if section is not None and section.db_name else db
        return TotalsRepo(client[name])

    def counting(
        self, backend: Backend, db: str, collection: str, tenant: str | None
    ) -> Counting | None:
        """The counting of one collection handle (``None`` when counting is off)."""
        if self._tally is None:
            return None
        t = tenant or NO_TENANT
        return Counting(
            rules=self.rules_for(collection),
            repo=self._repo(backend, db),
            key=totals_key(t, db, collection),
            ident={"t": t, "db": db, "c": collection},
            tally=self._tally,
        )

    def counting_for_repo(self, repo: RecordRepo, tenant: str | None) -> Counting | None:
        """The counting of the collection ``repo`` (of a backend of this instance) holds."""
        for backend in self._chronos.backends:
            if backend.client is repo.db.client:
                return self.counting(backend, repo.db.name, repo.name, tenant)
        return None

    async def ensure_ready(self, counting: Counting) -> None:
        """Create the counters' indexes in ``counting``'s database once per instance."""
        key = (id(counting.repo.db.client), counting.repo.db.name)
        pending = self._ready.get(key)
        if pending is None or (pending.done() and pending.exception() is not None):
            pending = self._ready[key] = asyncio.ensure_future(counting.repo.ensure_indexes())
        await asyncio.shield(pending)

    # -- reading -----------------------------------------------------------------------

    def _scope(self, db: str, collection: str, tenant: str | None) -> Counting:
        self._chronos._check_open()
        if not self.enabled or self._tally is None:
            raise ConfigError(
                "counters are off: add a 'counters' section or 'counter_rules' to the config"
            )
        # The collection handle checks the names and routes, as for any operation.
        counting = self._chronos.collection(collection, db=db, tenant=tenant)._scope.counting
        assert counting is not None
        return counting

    async def flush(self) -> None:
        """Apply this instance's pending increments now."""
        if self._tally is not None:
            await self._tally.flush()

    async def get_totals(self, *, db: str, collection: str, tenant: str | None = None) -> Totals:
        """The totals of ``db.collection`` (of ``tenant``), including this process's
        latest writes (its pending increments are applied first).

        Example::

            totals = await chronos.counters.get_totals(db="app", collection="users")
            print(totals.created, totals.gauges["active"], totals["signups"])
        """
        counting = self._scope(db, collection, tenant)
        await self.ensure_ready(counting)
        await self.flush()
        doc = await counting.repo.read(counting.key) or {}
        rules = counting.rules.rules
        unique_names = [r.name for r in counting.rules.unique_rules]
        unique = (
            await counting.repo.unique_counts(counting.key, unique_names) if unique_names else {}
        )
        reset = doc.get("reset_us")
        return Totals(
            db=db,
            collection=collection,
            tenant=tenant,
            **{name: int(doc.get(name, 0)) for name in EVENT_FIELDS.values()},
            rules={r.name: int(doc.get(r.field, 0)) for r in rules if r.kind == "events"},
            gauges={r.name: int(doc.get(r.field, 0)) for r in rules if r.kind == "gauge"},
            unique=unique,
            reset_at=from_us(int(reset)) if reset is not None else None,
        )

    async def reset_totals(self, *, db: str, collection: str, tenant: str | None = None) -> None:
        """Zero the event counts (and unique sets) of ``db.collection``; gauges, which
        describe the current records, stay. A later recount counts only the writes
        claimed after the reset. Exact when no write to the collection is in flight."""
        counting = self._scope(db, collection, tenant)
        await self.flush()
        await counting.repo.reset(counting.key, counting.ident, now_us())

    # -- repair ------------------------------------------------------------------------

    async def _expected(
        self, backend: Backend, repo: RecordRepo
    ) -> list[tuple[Counting, dict[str, int], Any, Doc]]:
        """Per tenant of ``repo``'s collection: its counting, the fields the version index
        gives, the unique facts and the stored totals document."""
        rules = self.rules_for(repo.name)
        probe = self.counting(backend, repo.db.name, repo.name, None)
        assert probe is not None
        stored = {
            str(doc.get("t")): doc
            async for doc in probe.repo.totals.find(
                {"db": {"$eq": repo.db.name}, "c": {"$eq": repo.name}}
            )
        }
        resets = {t: int(doc["reset_us"]) for t, doc in stored.items() if "reset_us" in doc}
        computed = await compute_totals(repo, backend.store, rules, resets=resets)
        out = []
        for t in sorted(set(computed) | set(stored)):
            counting = self.counting(
                backend, repo.db.name, repo.name, None if t == NO_TENANT else t
            )
            assert counting is not None
            part = computed.get(t)
            fields = dict(part.counts) if part is not None else {}
            out.append((counting, fields, part, stored.get(t, {})))
        return out

    async def drift(self, backend: Backend, repo: RecordRepo) -> list[CounterDrift]:
        """Fields whose stored totals differ from the version index (after applying this
        process's pending increments; other writers' in-flight increments show as drift)."""
        if not self.enabled:
            return []
        await self.flush()
        out = []
        for counting, fields, _, doc in await self._expected(backend, repo):
            out.extend(_differences(counting, fields, doc))
        return out

    async def recount(self, backend: Backend, repo: RecordRepo) -> RecountReport:
        """Rebuild the totals of ``repo``'s collection on ``backend`` from its version index."""
        await self.flush()
        report = RecountReport()
        for counting, fields, part, doc in await self._expected(backend, repo):
            await self.ensure_ready(counting)
            await counting.repo.replace(counting.key, counting.ident, fields)
            await counting.repo.replace_unique(
                counting.key,
                part.uniques if part else (),
                recounted=part.items if part else set(),
            )
            report += RecountReport(
                totals=1,
                records=part.records if part else 0,
                versions=part.versions if part else 0,
                corrected=tuple(_differences(counting, fields, doc)),
            )
        return report


def _differences(
    counting: Counting, fields: Mapping[str, int], doc: Mapping[str, Any]
) -> list[CounterDrift]:
    t = str(counting.ident["t"])
    names = set(EVENT_FIELDS.values()) | {r.field for r in counting.rules.rules}
    names |= {f for f in doc if f[:2] in ("r_", "g_")}
    out = []
    for name in sorted(names):
        expected = int(fields.get(name, 0)) + int(doc.get(f"b_{name}", 0))
        stored = int(doc.get(name, 0))
        if stored != expected:
            out.append(
                CounterDrift(
                    db=str(counting.ident["db"]),
                    collection=str(counting.ident["c"]),
                    tenant=None if t == NO_TENANT else t,
                    field=name,
                    stored=stored,
                    expected=expected,
                )
            )
    return out
