"""The MongoDB side of the counters: ``cnt_total`` and ``cnt_unique``.

``cnt_total``  one document per (tenant, database, collection), ``_id = "<t>|<db>|<coll>"``::

    t, db, c, created, updated, deleted, restored, enriched, r_<rule>, g_<rule>,
    b_<field> (the part of each field that came from hard-deleted records, whose
    versions are gone: a recount starts from it), reset_us (the last reset)

Field names are flat (no nested ``rules.<name>``): an upserting ``$inc`` on a dotted path
is not applied faithfully by every wire-compatible server, and flat names mean the same
on MongoDB.

``cnt_unique``  the distinct values of ``count_unique`` rules: one ``value`` document per
(totals, rule, value hash) and one ``member`` document per (totals, rule, value hash,
record). Both are inserted idempotently (their ``_id`` is the fact), so applying the same
contribution twice changes nothing, and a purge can take one record's values out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pymongo import ASCENDING, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from chronos_async.meta._errors import mongo_errors

__all__ = ["TotalsRepo", "UniqueFact"]

Doc = dict[str, Any]
#: ``(rule, value hash, record id)``
UniqueFact = tuple[str, str, str]
_DUPLICATE_KEY = 11000


class TotalsRepo:
    """Totals and unique-value sets in one MongoDB database."""

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.db = db
        self.totals = db["cnt_total"]
        self.unique = db["cnt_unique"]

    async def ensure_indexes(self) -> None:
        """Create the indexes counting relies on (idempotent)."""
        with mongo_errors("counter index creation"):
            await self.unique.create_index(
                [("k", ASCENDING), ("kind", ASCENDING), ("r", ASCENDING)]
            )
            await self.unique.create_index([("k", ASCENDING), ("item", ASCENDING)])

    async def apply(
        self, increments: Mapping[str, tuple[Mapping[str, Any], Mapping[str, int]]]
    ) -> None:
        """Add ``counts`` to each totals document ``key`` (created when missing), in one
        round trip. ``increments`` maps a key to ``(identity fields, counts)``."""
        ops = [
            UpdateOne(
                {"_id": key},
                {"$inc": {f: n for f, n in counts.items() if n}, "$set": dict(ident)},
                upsert=True,
            )
            for key, (ident, counts) in increments.items()
            if any(counts.values())
        ]
        if ops:
            with mongo_errors("counter update"):
                await self.totals.bulk_write(ops, ordered=False)

    async def add_unique(self, key: str, facts: Iterable[UniqueFact]) -> None:
        """Record ``facts`` in the unique sets of ``key`` (each at most once, ever)."""
        facts = list(facts)
        if not facts:
            return
        members = [
            {"_id": f"m|{key}|{r}|{h}|{item}", "k": key, "kind": "m", "r": r, "h": h, "item": item}
            for r, h, item in facts
        ]
        values = {
            f"v|{key}|{r}|{h}": {"_id": f"v|{key}|{r}|{h}", "k": key, "kind": "v", "r": r, "h": h}
            for r, h, _ in facts
        }
        # Members first: a purge that takes a value out re-checks its members afterwards.
        await self._insert_new(members)
        await self._insert_new(list(values.values()))

    async def _insert_new(self, docs: list[Doc]) -> None:
        with mongo_errors("unique-set update"):
            try:
                await self.unique.insert_many(docs, ordered=False)
            except BulkWriteError as exc:  # only "already there" is expected
                errors = exc.details.get("writeErrors", [])
                if any(e.get("code") != _DUPLICATE_KEY for e in errors):
                    raise

    async def read(self, key: str) -> Doc | None:
        """The totals document of ``key``."""
        with mongo_errors("counter read"):
            return await self.totals.find_one({"_id": key})

    async def unique_counts(self, key: str, rules: Sequence[str]) -> dict[str, int]:
        """How many distinct values each of ``rules`` has seen under ``key``."""
        counts = {}
        with mongo_errors("unique-set count"):
            for rule in rules:
                counts[rule] = await self.unique.count_documents(
                    {"k": {"$eq": key}, "kind": {"$eq": "v"}, "r": {"$eq": rule}}
                )
        return counts

    async def replace(self, key: str, ident: Mapping[str, Any], fields: Mapping[str, int]) -> None:
        """Set the counts of ``key`` to ``fields`` plus its hard-delete base (a recount)."""
        with mongo_errors("counter recount"):
            current = await self.totals.find_one({"_id": key}) or {}
            doc: Doc = {"_id": key, **ident}
            base = {f: int(v) for f, v in current.items() if f.startswith("b_")}
            doc.update(base)
            if "reset_us" in current:
                doc["reset_us"] = current["reset_us"]
            names = set(fields) | {f.removeprefix("b_") for f in base}
            for name in names:
                doc[name] = int(fields.get(name, 0)) + base.get(f"b_{name}", 0)
            await self.totals.replace_one({"_id": key}, doc, upsert=True)

    async def reset(self, key: str, ident: Mapping[str, Any], now_us: int) -> None:
        """Zero every event count of ``key`` and forget its unique sets; gauges stay."""
        with mongo_errors("counter reset"):
            current = await self.totals.find_one({"_id": key}) or {}
            doc: Doc = {"_id": key, **ident, "reset_us": now_us}
            doc.update({f: int(v) for f, v in current.items() if f.startswith("g_")})
            await self.totals.replace_one({"_id": key}, doc, upsert=True)
            await self.unique.delete_many({"k": {"$eq": key}})

    async def replace_unique(
        self, key: str, facts: Iterable[UniqueFact], *, recounted: set[str]
    ) -> None:
        """Rebuild the unique sets of ``key``: the members of the ``recounted`` records
        become ``facts``; members of other records (hard-deleted ones, whose versions are
        gone) are kept."""
        with mongo_errors("unique-set rebuild"):
            kept = [
                (str(m["r"]), str(m["h"]), str(m["item"]))
                async for m in self.unique.find({"k": {"$eq": key}, "kind": {"$eq": "m"}})
                if m["item"] not in recounted
            ]
            await self.unique.delete_many({"k": {"$eq": key}})
        await self.add_unique(key, [*facts, *kept])

    async def forget_record(self, key: str, item_id: str) -> int:
        """Take record ``item_id`` out of the unique sets of ``key`` (a purge).

        A value stays counted while another record still holds it. Returns how many
        membership entries were removed.
        """
        with mongo_errors("unique-set purge"):
            members = await self.unique.find(
                {"k": {"$eq": key}, "kind": {"$eq": "m"}, "item": {"$eq": item_id}}
            ).to_list(None)
            if not members:
                return 0
            await self.unique.delete_many({"_id": {"$in": [m["_id"] for m in members]}})
            for m in members:
                rest = {
                    "k": {"$eq": key},
                    "kind": {"$eq": "m"},
                    "r": {"$eq": m["r"]},
                    "h": {"$eq": m["h"]},
                }
                vid = f"v|{key}|{m['r']}|{m['h']}"
                if await self.unique.count_documents(rest, limit=1):
                    continue
                await self.unique.delete_one({"_id": vid})
                # A writer may have added a member meanwhile (it inserts members first).
                if await self.unique.count_documents(rest, limit=1):
                    await self._insert_new(
                        [{"_id": vid, "k": key, "kind": "v", "r": m["r"], "h": m["h"]}]
                    )
        return len(members)
