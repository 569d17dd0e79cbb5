"""The MongoDB side of rollup: the per-collection catalog of manifests, and the lease
that lets one process at a time run the background rollup.

``<coll>_rollup``  one document per record and period, ``_id = "<tenant>/<id>/<period>"``::

    t, id, period, key (the manifest object in the backups store), sha256, size, count,
    first_ov, last_ov, first_at, last_at, first_cv, last_cv (of the versions it holds),
    spans ([key, offset, length] of every payload they refer to), content (the sorted
    distinct content object keys they refer to; absent in documents written before it
    was kept: unknown), gen, updated_us

A record's catalog documents cover disjoint ``ov`` ranges (its rolled-up versions are
``0 .. bound-1``). The catalog is written *before* a version leaves ``<coll>_ver`` and is
moved only by compare-and-swap on ``gen``, so a reader that misses a version in the
index and then asks the catalog always finds it. A record never rolled up has no
catalog document, so the fallback costs it one indexed query that finds nothing.

``chronos_lifecycle`` (in the fallback database): ``{_id: name, owner, exp_us}``, a lease
with expiry: the background service runs only while it holds it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from chronos_async.meta._errors import DuplicateKeyError, mongo_errors

__all__ = ["LifecycleLease", "RollupCatalog", "catalog_id"]

Doc = dict[str, Any]


def catalog_id(t: str, item_id: str, period: str) -> str:
    """The ``_id`` of a record's catalog document for ``period``."""
    return f"{t}/{item_id}/{period}"


class RollupCatalog:
    """Catalog of the manifests of one (database, collection) pair."""

    def __init__(self, db: AsyncDatabase[Doc], collection: str) -> None:
        self.db = db
        self.name = collection
        self.docs = db[f"{collection}_rollup"]

    async def ensure_indexes(self) -> None:
        """Create the indexes the fallback reads rely on (idempotent)."""
        with mongo_errors(f"index creation on {self.name}_rollup"):
            await self.docs.create_index(
                [("t", ASCENDING), ("id", ASCENDING), ("first_ov", ASCENDING)]
            )
            await self.docs.create_index(
                [("t", ASCENDING), ("id", ASCENDING), ("first_at", ASCENDING)]
            )

    def _record(self, t: str, item_id: str) -> Doc:
        return {"t": {"$eq": t}, "id": {"$eq": item_id}}

    async def for_record(self, t: str, item_id: str) -> list[Doc]:
        """Every catalog document of a record, in ``ov`` order."""
        with mongo_errors("rollup catalog read"):
            cursor = self.docs.find(self._record(t, item_id)).sort([("first_ov", ASCENDING)])
            return await cursor.to_list(None)

    async def for_records(self, records: set[tuple[str, str]]) -> list[Doc]:
        """Every catalog document of ``records`` (``(t, id)`` pairs), in one query."""
        if not records:
            return []
        query = {
            "t": {"$in": sorted({t for t, _ in records})},
            "id": {"$in": sorted({i for _, i in records})},
        }
        with mongo_errors("rollup catalog read"):
            docs = await self.docs.find(query).sort([("first_ov", ASCENDING)]).to_list(None)
        return [d for d in docs if (str(d["t"]), str(d["id"])) in records]

    async def _last(self, query: Doc, field: str) -> Doc | None:
        with mongo_errors("rollup catalog read"):
            found = await self.docs.find(query).sort([(field, DESCENDING)]).limit(1).to_list(1)
        return found[0] if found else None

    async def covering_ov(self, t: str, item_id: str, ov: int) -> Doc | None:
        """The document whose range holds ``ov`` (``None``: not rolled up)."""
        doc = await self._last({**self._record(t, item_id), "first_ov": {"$lte": ov}}, "first_ov")
        return doc if doc is not None and int(doc["last_ov"]) >= ov else None

    async def latest_at_or_before(self, t: str, item_id: str, at_us: int) -> Doc | None:
        """The document with the latest first commit time at or before ``at_us``."""
        return await self._last(
            {**self._record(t, item_id), "first_at": {"$lte": at_us}}, "first_at"
        )

    async def latest_cv_at_or_before(self, t: str, item_id: str, cv: int) -> Doc | None:
        """The document with the latest first ``cv`` at or below ``cv``."""
        return await self._last({**self._record(t, item_id), "first_cv": {"$lte": cv}}, "first_ov")

    async def find(self, doc_id: str) -> Doc | None:
        """One catalog document by ``_id``."""
        with mongo_errors("rollup catalog read"):
            return await self.docs.find_one({"_id": doc_id})

    async def put(self, doc: Doc, *, expected_gen: int | None) -> bool:
        """Insert (``expected_gen=None``) or replace the document if it is still at
        ``expected_gen``; False when someone else changed it first."""
        with mongo_errors("rollup catalog write"):
            if expected_gen is None:
                try:
                    await self.docs.insert_one(doc)
                except DuplicateKeyError:
                    return False
                return True
            result = await self.docs.replace_one(
                {"_id": doc["_id"], "gen": {"$eq": expected_gen}}, doc
            )
        return result.matched_count == 1

    async def remove(self, doc_id: str, *, expected_gen: int) -> bool:
        """Delete the document if it is still at ``expected_gen``."""
        with mongo_errors("rollup catalog write"):
            result = await self.docs.delete_one({"_id": doc_id, "gen": {"$eq": expected_gen}})
        return result.deleted_count == 1

    def scan(self, projection: Doc | None = None) -> AsyncIterator[Doc]:
        """Every catalog document of the collection, in ``(t, id, first_ov)`` order."""
        with mongo_errors("rollup catalog scan"):
            cursor = self.docs.find({}, projection=projection).sort(
                [("t", ASCENDING), ("id", ASCENDING), ("first_ov", ASCENDING)]
            )
        return _guarded(cursor.__aiter__())


async def _guarded(source: AsyncIterator[Doc]) -> AsyncIterator[Doc]:
    while True:
        with mongo_errors("rollup catalog scan"):
            try:
                doc = await anext(source)
            except StopAsyncIteration:
                return
        yield doc


class LifecycleLease:
    """A named lease with expiry in ``<database>.chronos_lifecycle``."""

    def __init__(self, db: AsyncDatabase[Doc], name: str) -> None:
        self.docs = db["chronos_lifecycle"]
        self.name = name

    async def take(self, owner: str, now_us: int, ttl_us: int) -> bool:
        """Take (or renew) the lease for ``owner``; False while another owner holds it."""
        with mongo_errors("lifecycle lease"):
            try:
                await self.docs.insert_one(
                    {"_id": self.name, "owner": owner, "exp_us": now_us + ttl_us}
                )
                return True
            except DuplicateKeyError:
                pass
            result = await self.docs.update_one(
                {
                    "_id": self.name,
                    "$or": [{"exp_us": {"$lt": now_us}}, {"owner": {"$eq": owner}}],
                },
                {"$set": {"owner": owner, "exp_us": now_us + ttl_us}},
            )
        return result.matched_count == 1

    async def release(self, owner: str) -> None:
        """Give the lease up if ``owner`` holds it."""
        with mongo_errors("lifecycle lease"):
            await self.docs.update_one(
                {"_id": self.name, "owner": {"$eq": owner}}, {"$set": {"exp_us": 0}}
            )
