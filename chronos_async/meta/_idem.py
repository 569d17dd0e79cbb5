"""Idempotency-key reservations of one collection: ``<coll>_idem``.

One document per key, ``_id = "<tenant>/<key>"``::

    fp          fingerprint of the call's arguments (a reused key with other arguments
                is refused)
    op, id      the write and its record (for a create without an id, the id chosen
                when the key was first reserved, so every retry creates the same record)
    state       "pending" while a call runs (or ended without a definite answer),
                "done" with ``result`` once a version was published
    token       the call that holds the reservation (taken over with a compare-and-swap)
    busy_us     until when its holder is presumed alive (epoch µs)
    result      ``{id, ov, cv, at, changed}`` of the published version
    expires     when the key is forgotten (a BSON date; a TTL index removes the document,
                and readers treat an expired one as absent in the meantime)

The version a keyed write publishes records the key too (``idem``, ``idem_fp``), so the
answer survives the loss of this document and is checked against the version index.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from chronos_async.meta._errors import mongo_errors

__all__ = ["IdemRepo"]

Doc = dict[str, Any]


class IdemRepo:
    """Reservations of idempotency keys for one (database, collection) pair."""

    def __init__(self, db: AsyncDatabase[Doc], collection: str) -> None:
        self.docs = db[f"{collection}_idem"]
        self.versions = db[f"{collection}_ver"]

    async def ensure_indexes(self) -> None:
        """The TTL index on ``expires`` (idempotent). Versions are looked up by record
        and key through their ``(t, id, ov)`` index: no index of their own, so writes
        without a key pay nothing for keys."""
        with mongo_errors("index creation"):
            await self.docs.create_index([("expires", ASCENDING)], expireAfterSeconds=0)

    async def reserve(self, doc: Doc) -> None:
        """Insert a reservation (raises ``DuplicateKeyError`` when the key is taken)."""
        with mongo_errors("idempotency reservation"):
            await self.docs.insert_one(doc)

    async def find(self, rid: str) -> Doc | None:
        """The reservation ``rid``, or ``None``."""
        with mongo_errors("idempotency lookup"):
            return await self.docs.find_one({"_id": rid})

    async def take_over(self, rid: str, token: str, new_token: str, busy_us: int) -> Doc | None:
        """Hand a pending reservation held by ``token`` to ``new_token``; the new document,
        or ``None`` when someone else got it first (or it was completed)."""
        with mongo_errors("idempotency takeover"):
            return await self.docs.find_one_and_update(
                {"_id": rid, "token": {"$eq": token}, "state": {"$eq": "pending"}},
                {"$set": {"token": new_token, "busy_us": busy_us}},
                return_document=ReturnDocument.AFTER,
            )

    async def complete(self, rid: str, result: Doc) -> None:
        """Record the published result (whoever holds the reservation)."""
        with mongo_errors("idempotency completion"):
            await self.docs.update_one(
                {"_id": rid}, {"$set": {"state": "done", "result": result, "token": None}}
            )

    async def release(self, rid: str, token: str) -> None:
        """Drop a reservation whose call wrote nothing (only while ``token`` holds it)."""
        with mongo_errors("idempotency release"):
            await self.docs.delete_one(
                {"_id": rid, "token": {"$eq": token}, "state": {"$eq": "pending"}}
            )

    async def forget(self, rid: str, now: datetime) -> None:
        """Remove the reservation ``rid`` if it has expired (before its TTL index does)."""
        with mongo_errors("idempotency expiry"):
            await self.docs.delete_one({"_id": rid, "expires": {"$lt": now}})

    async def version_with_key(
        self, tenant: str, item_id: str, key: str, since_us: int
    ) -> Doc | None:
        """The newest version of record ``item_id`` written with ``key`` and claimed after
        ``since_us`` (served by the ``(t, id, ov)`` index: the record is always known)."""
        query = {
            "t": {"$eq": tenant},
            "id": {"$eq": item_id},
            "idem": {"$eq": key},
            "claim_us": {"$gt": since_us},
        }
        with mongo_errors("idempotency version lookup"):
            found = await self.versions.find(query).sort([("claim_us", -1)]).limit(1).to_list(1)
        return found[0] if found else None
