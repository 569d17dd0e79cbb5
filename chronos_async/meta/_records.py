"""The MongoDB side of one collection: heads, versions, the ``cv`` counter.

Documents (field names are short because every head and version carries them):

``<coll>_head``  one per record, ``_id = "<tenant>/<id>"``::

    t, id, ov, cv, at (commit time of version ov, epoch µs), op, created_us, updated_us,
    deleted, deleted_us, actor, reason, parent_id, origin_id, function_ids, meta,
    key, size, sha256, inline (payload bytes when small), restored_from,
    lease_exp (epoch µs; 0 = free), lease_token, lease_owner, lease_fence (grant count)

``<coll>_ver``  one per version, ``_id = "<tenant>/<id>/<ov>"``: the facts of the version
(``op``, actor, payload key, ``cv``, ...) plus ``function_id``, ``token`` (the write
attempt that claimed it), ``claim_us`` (when it was claimed) and ``prev_at`` (the commit
time of version ``ov - 1``; -1 for ``ov = 0``). Inserting it is the claim on ``ov``:
``_id`` is unique, so two writers can never both own one ``ov``. A version's own commit
time is not known when it is claimed (it is fixed when the head moves, see
:mod:`chronos_async._publish`): it is the next version's ``prev_at``, or the head's
``at`` for the current version.

``<coll>_counter``  ``{_id: "cv/<tenant>", value}``: the collection version.

Equality on fields other than ``_id`` is always written as ``{"$eq": value}``: some
wire-compatible servers take a bare 24-hex-digit string for an ObjectId and match
nothing, and the explicit form means the same on MongoDB.

Heads are only ever moved with a whole-document compare-and-swap on ``ov``
(``replace_one``), never with ``$set``: that keeps every type intact on servers whose
``$set`` is lossy, and makes "move the head and drop the lease" one round trip.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from chronos_async._errors import StorageError
from chronos_async.meta._errors import mongo_errors

__all__ = ["HEAD_LIGHT", "RecordRepo"]

Doc = dict[str, Any]
Session = AsyncClientSession

#: Head fields needed to write (everything except the inline payload).
HEAD_LIGHT: Mapping[str, int] = {"inline": 0}
_LEASE_FREE = {"lease_exp": 0, "lease_token": None, "lease_owner": None}


class RecordRepo:
    """Head/version/counter access for one (database, collection) pair."""

    def __init__(self, db: AsyncDatabase[Doc], collection: str) -> None:
        self.db = db
        self.name = collection
        self.heads = db[f"{collection}_head"]
        self.versions = db[f"{collection}_ver"]
        self.counter = db[f"{collection}_counter"]

    async def ensure_indexes(self, indexed_props: Sequence[str]) -> None:
        """Create the indexes this collection's queries rely on (idempotent)."""
        with mongo_errors(f"index creation on {self.name}"):
            await self.versions.create_index(
                [("t", ASCENDING), ("id", ASCENDING), ("ov", ASCENDING)], unique=True
            )
            await self.versions.create_index(
                [("t", ASCENDING), ("id", ASCENDING), ("prev_at", ASCENDING)]
            )
            await self.versions.create_index([("t", ASCENDING), ("cv", ASCENDING)])
            await self.heads.create_index([("t", ASCENDING), ("updated_us", DESCENDING)])
            await self.heads.create_index([("t", ASCENDING), ("created_us", DESCENDING)])
            for prop in indexed_props:
                await self.heads.create_index(
                    [("t", ASCENDING), (f"meta.{prop.removesuffix('[]')}", ASCENDING)]
                )

    # -- heads -------------------------------------------------------------------------

    async def find_head(self, hid: str, *, with_inline: bool = True) -> Doc | None:
        """The head document, or ``None``."""
        with mongo_errors("head read"):
            return await self.heads.find_one(
                {"_id": hid}, projection=None if with_inline else dict(HEAD_LIGHT)
            )

    async def take_lease(
        self, hid: str, *, token: str, owner: str, now_us: int, lease_us: int, with_inline: bool
    ) -> Doc | None:
        """Take the record's lease if it is free or expired; the head as it is now, or None.

        ``None`` means the record does not exist or another writer holds a live lease.
        """
        with mongo_errors("lease acquisition"):
            return await self.heads.find_one_and_update(
                {"_id": hid, "lease_exp": {"$lt": now_us}},
                {
                    "$set": {
                        "lease_exp": now_us + lease_us,
                        "lease_token": token,
                        "lease_owner": owner,
                    },
                    "$inc": {"lease_fence": 1},
                },
                projection=None if with_inline else dict(HEAD_LIGHT),
                return_document=ReturnDocument.AFTER,
            )

    async def renew_lease(self, hid: str, token: str, expires_us: int) -> bool:
        """Extend the lease if this token still holds it; False when it was taken over."""
        with mongo_errors("lease renewal"):
            result = await self.heads.update_one(
                {"_id": hid, "lease_token": {"$eq": token}}, {"$set": {"lease_exp": expires_us}}
            )
        return result.matched_count == 1

    async def release_lease(self, hid: str, token: str) -> None:
        """Free the lease if this token still holds it."""
        with mongo_errors("lease release"):
            await self.heads.update_one(
                {"_id": hid, "lease_token": {"$eq": token}},
                {"$set": {"lease_exp": 0, "lease_token": None}},
            )

    async def insert_head(self, head: Doc, session: AsyncClientSession | None = None) -> None:
        """Insert a new head (raises ``DuplicateKeyError`` when the id is taken)."""
        with mongo_errors("head insert"):
            await self.heads.insert_one({**head, **_LEASE_FREE}, session=session)

    async def move_head(
        self,
        hid: str,
        expected_ov: int,
        head: Doc,
        session: AsyncClientSession | None = None,
        *,
        lease_token: str | None = None,
    ) -> bool:
        """Compare-and-swap: replace the head if it is still at ``expected_ov`` (and, when
        ``lease_token`` is given, still leased with it).

        The new document carries no lease, so a successful move also releases it. The
        token condition lets a writer fence off its own head move that may still be in
        flight (see :meth:`fence_lease`).
        """
        query: Doc = {"_id": hid, "ov": {"$eq": expected_ov}}
        if lease_token is not None:
            query["lease_token"] = {"$eq": lease_token}
        with mongo_errors("head update"):
            result = await self.heads.replace_one(query, {**head, **_LEASE_FREE}, session=session)
        return result.matched_count == 1

    async def fence_lease(self, hid: str, token: str, new_token: str) -> bool:
        """Swap the lease token (keeping the lease): moves sent with ``token`` can no
        longer land. False when ``token`` no longer holds the lease."""
        with mongo_errors("lease fence"):
            result = await self.heads.update_one(
                {"_id": hid, "lease_token": {"$eq": token}}, {"$set": {"lease_token": new_token}}
            )
        return result.matched_count == 1

    async def delete_head(self, hid: str, token: str) -> bool:
        """Remove the head while holding its lease (hard delete)."""
        with mongo_errors("head delete"):
            result = await self.heads.delete_one({"_id": hid, "lease_token": {"$eq": token}})
        return result.deleted_count == 1

    def find_heads(
        self,
        query: Doc,
        *,
        sort: Sequence[tuple[str, int]],
        limit: int,
        projection: Mapping[str, int] | None = None,
    ) -> AsyncIterator[Doc]:
        """Heads matching ``query`` in ``sort`` order (an async cursor)."""
        with mongo_errors("head query"):
            cursor = (
                self.heads.find(query, projection=dict(projection) if projection else None)
                .sort(list(sort))
                .limit(limit)
            )
        return _guarded(cursor.__aiter__(), "head query")

    # -- versions ----------------------------------------------------------------------

    async def insert_version(self, version: Doc, session: AsyncClientSession | None = None) -> None:
        """Claim ``version["ov"]`` (raises ``DuplicateKeyError`` if someone owns it)."""
        with mongo_errors("version insert"):
            await self.versions.insert_one(version, session=session)

    async def find_version(self, vid: str) -> Doc | None:
        """One version document by its ``_id``."""
        with mongo_errors("version read"):
            return await self.versions.find_one({"_id": vid})

    async def find_versions(self, vids: Sequence[str]) -> dict[str, Doc]:
        """Version documents by ``_id`` (missing ones are absent from the result)."""
        with mongo_errors("version read"):
            cursor = self.versions.find({"_id": {"$in": list(vids)}})
            return {doc["_id"]: doc async for doc in cursor}

    async def find_versions_before(
        self, tenant: str, item_id: str, at_us: int, limit: int
    ) -> list[Doc]:
        """The ``limit`` versions with the latest ``prev_at`` at or before ``at_us``.

        ``prev_at`` (the commit time of the version before) increases with ``ov``, so
        these are consecutive versions, newest first: the first one's predecessor is the
        newest version committed at or before ``at_us``, give or take the first itself
        (see :func:`chronos_async._asof.pick_as_of`).
        """
        with mongo_errors("version read"):
            cursor = (
                self.versions.find(
                    {"t": {"$eq": tenant}, "id": {"$eq": item_id}, "prev_at": {"$lte": at_us}}
                )
                .sort([("prev_at", DESCENDING)])
                .limit(limit)
            )
            return await cursor.to_list(length=limit)

    def iter_versions(
        self,
        tenant: str,
        item_id: str,
        *,
        max_ov: int,
        batch_size: int = 100,
        with_inline: bool = False,
    ) -> AsyncIterator[Doc]:
        """Versions ``max_ov, max_ov-1, ..., 0`` of a record (inline payloads on request)."""
        with mongo_errors("version read"):
            cursor = (
                self.versions.find(
                    {"t": {"$eq": tenant}, "id": {"$eq": item_id}, "ov": {"$lte": max_ov}},
                    projection=None if with_inline else {"inline": 0},
                )
                .sort([("ov", DESCENDING)])
                .batch_size(batch_size)
            )
        return _guarded(cursor.__aiter__(), "version read")

    async def items_changed_since(
        self, tenant: str, *, cv: int | None, at_us: int | None
    ) -> set[str]:
        """Ids of the records with a version after ``cv`` (or committed after ``at_us``).

        After ``cv``: served by the ``(t, cv)`` version index. After a time: the records
        whose head (their newest commit) is later, served by the ``(t, updated_us)``
        head index. Either way the work is proportional to the number of changes since
        the target, not to the size of the collection.
        """
        with mongo_errors("change scan"):
            if cv is not None:
                cursor = self.versions.find(
                    {"t": {"$eq": tenant}, "cv": {"$gt": cv}}, projection={"id": 1, "_id": 0}
                ).batch_size(1000)
            else:
                cursor = self.heads.find(
                    {"t": {"$eq": tenant}, "updated_us": {"$gt": at_us}},
                    projection={"id": 1, "_id": 0},
                ).batch_size(1000)
            return {doc["id"] async for doc in cursor}

    async def version_at_cv(self, tenant: str, item_id: str, cv: int, *, max_ov: int) -> Doc | None:
        """The record's newest version up to ``max_ov`` with a ``cv`` at or below ``cv``.

        With its inline payload copy: a restore to it carries the copy over.
        """
        query: Doc = {
            "t": {"$eq": tenant},
            "id": {"$eq": item_id},
            "cv": {"$lte": cv},
            "ov": {"$lte": max_ov},
        }
        with mongo_errors("version read"):
            found = await self.versions.find(query).sort([("ov", DESCENDING)]).limit(1).to_list(1)
        return found[0] if found else None

    async def delete_version(self, vid: str, token: str) -> bool:
        """Withdraw a claim made by write attempt ``token`` (compensation)."""
        with mongo_errors("version withdrawal"):
            result = await self.versions.delete_one({"_id": vid, "token": {"$eq": token}})
        return result.deleted_count == 1

    async def repoint_payload(
        self, kind: str, doc_id: str, old: tuple[str, int], new: tuple[str, int]
    ) -> bool:
        """Move a version's (``kind="ver"``) or head's (``"head"``) packed payload from
        ``(key, offset)`` ``old`` to ``new``, only while it is still at ``old``.

        Strings and integers only: ``$set`` keeps them intact on every server.
        """
        target = self.versions if kind == "ver" else self.heads
        with mongo_errors("payload repoint"):
            result = await target.update_one(
                {"_id": doc_id, "key": {"$eq": old[0]}, "offset": {"$eq": old[1]}},
                {"$set": {"key": new[0], "offset": new[1]}},
            )
        return result.modified_count == 1

    async def delete_versions(self, tenant: str, item_id: str) -> int:
        """Remove every version of a record (hard delete)."""
        with mongo_errors("version delete"):
            result = await self.versions.delete_many({"t": {"$eq": tenant}, "id": {"$eq": item_id}})
        return result.deleted_count

    # -- collection counter --------------------------------------------------------------

    async def next_cv(self, tenant: str, session: AsyncClientSession | None = None) -> int:
        """Allocate the next collection version (1, 2, 3, ...; gaps after failed writes)."""
        with mongo_errors("cv allocation"):
            doc = await self.counter.find_one_and_update(
                {"_id": f"cv/{tenant}"},
                {"$inc": {"value": 1}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
                session=session,
            )
        if doc is None:  # an upsert with AFTER always returns the document
            raise StorageError(f"MongoDB cv allocation on {self.name} returned nothing")
        return int(doc["value"])

    async def current_cv(self, tenant: str) -> int:
        """The last allocated collection version (0 before the first write)."""
        with mongo_errors("cv read"):
            doc = await self.counter.find_one({"_id": f"cv/{tenant}"})
        return int(doc["value"]) if doc else 0


async def _guarded(source: AsyncIterator[Doc], what: str) -> AsyncIterator[Doc]:
    """Iterate a cursor, translating driver errors raised while fetching batches."""
    while True:
        with mongo_errors(what):
            try:
                doc = await anext(source)
            except StopAsyncIteration:
                return
        yield doc
