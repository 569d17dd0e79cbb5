"""The MongoDB side of the fallback queue: operations and dead letters of one backend.

``<fallback.database>.<fallback.queue_collection>`` holds one document per operation,
``_id`` = its op id::

    state       queued -> running -> done | cancelled  (dead ones move to the dead
                letters); a "running" operation whose claim expired is due again
    op, tenant, db, collection, args, key
                what to apply (see :mod:`._ops`)
    attempts    how many times a worker claimed it
    next_us     when it is due (epoch µs); claim_us, owner: who runs it until when
    last_error  the last attempt's error; result: the WriteResult once done
    created_us, finished (a date: finished operations expire after keep_done_seconds)

A worker *claims* a due operation with one ``find_one_and_update`` (state, claim and
attempt count change together), so two workers, in one process or many, never run the
same operation at the same time, and a worker that dies leaves it to another once its
claim expires. Every later change of the document is conditional on the claim's owner.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from chronos_async.meta import DuplicateKeyError, mongo_errors

__all__ = ["QueueRepo"]

Doc = dict[str, Any]


class QueueRepo:
    """The queue and dead-letter collections of one backend."""

    def __init__(self, db: AsyncDatabase[Doc], queue: str, dead: str, keep_done_s: int) -> None:
        self.ops = db[queue]
        self.dead = db[dead]
        self.keep_done_s = keep_done_s

    async def ensure_indexes(self) -> None:
        """The claim order, the expiry of finished operations, the dead-letter order."""
        with mongo_errors("queue index creation"):
            await self.ops.create_index([("state", ASCENDING), ("next_us", ASCENDING)])
            await self.ops.create_index(
                [("finished", ASCENDING)], expireAfterSeconds=self.keep_done_s
            )
            await self.dead.create_index([("failed_us", DESCENDING)])

    # -- producers ----------------------------------------------------------------------

    async def enqueue(self, doc: Doc) -> bool:
        """Insert an operation; False when it is there already (moved from the spool)."""
        with mongo_errors("queue insert"):
            try:
                await self.ops.insert_one(doc)
            except DuplicateKeyError:
                return False
        return True

    # -- the worker ---------------------------------------------------------------------

    async def claim(self, owner: str, now_us: int, claim_us: int) -> Doc | None:
        """Claim the operation that is due first (queued, or running with an expired
        claim); ``None`` when none is due."""
        with mongo_errors("queue claim"):
            return await self.ops.find_one_and_update(
                {
                    "$or": [
                        {"state": {"$eq": "queued"}, "next_us": {"$lte": now_us}},
                        {"state": {"$eq": "running"}, "claim_us": {"$lt": now_us}},
                    ]
                },
                {
                    "$set": {"state": "running", "claim_us": now_us + claim_us, "owner": owner},
                    "$inc": {"attempts": 1},
                },
                sort=[("next_us", ASCENDING)],
                return_document=ReturnDocument.AFTER,
            )

    async def extend(self, op_id: str, owner: str, claim_until_us: int) -> bool:
        """Extend ``owner``'s claim (a long attempt is not taken over while it runs)."""
        with mongo_errors("queue claim extension"):
            result = await self.ops.update_one(
                {"_id": op_id, "state": {"$eq": "running"}, "owner": {"$eq": owner}},
                {"$set": {"claim_us": claim_until_us}},
            )
        return result.matched_count == 1

    async def finish(self, op_id: str, owner: str, result: Doc) -> bool:
        """Mark a claimed operation done with its result."""
        return await self._update_claimed(
            op_id,
            owner,
            {"state": "done", "result": result, "finished": datetime.now(UTC), "owner": None},
            "queue completion",
        )

    async def reschedule(self, op_id: str, owner: str, next_us: int, error: Doc) -> bool:
        """Put a claimed operation back in the queue, due at ``next_us``."""
        return await self._update_claimed(
            op_id,
            owner,
            {"state": "queued", "next_us": next_us, "last_error": error, "owner": None},
            "queue reschedule",
        )

    async def dead_letter(
        self, doc: Doc, owner: str | None, reason: str, error: Doc, failed_us: int
    ) -> bool:
        """Move an operation to the dead letters; False when ``owner`` no longer holds it.

        Three steps, each safe to repeat: the operation is marked dead where it is (only
        while its claim is ``owner``'s: a worker whose claim expired never dead-letters
        what another worker took), copied to the dead letters under the same ``_id``,
        and removed from the queue. An operation marked dead but not yet moved (a crash
        in between) is moved by :meth:`settle_dead`.
        """
        marks: Doc = {"state": "dead", "reason": reason, "last_error": error}
        marks.update(failed_us=failed_us, owner=None)
        query: Doc = {"_id": doc["_id"]}
        if owner is not None:
            query.update(state={"$eq": "running"}, owner={"$eq": owner})
        with mongo_errors("dead-letter move"):
            marked = await self.ops.find_one_and_update(
                query, {"$set": marks}, return_document=ReturnDocument.AFTER
            )
            if marked is None:
                return False
            await self._move_dead(marked)
        return True

    async def _move_dead(self, doc: Doc) -> None:
        with contextlib.suppress(DuplicateKeyError):
            await self.dead.insert_one(doc)
        await self.ops.delete_one({"_id": doc["_id"], "state": {"$eq": "dead"}})

    async def settle_dead(self) -> int:
        """Finish moves to the dead letters that a crash interrupted; how many."""
        moved = 0
        with mongo_errors("dead-letter move"):
            async for doc in self.ops.find({"state": {"$eq": "dead"}}):
                await self._move_dead(doc)
                moved += 1
        return moved

    async def release(self, op_id: str, owner: str, now_us: int) -> bool:
        """Give a claimed operation back unfinished (its worker is stopping)."""
        return await self._update_claimed(
            op_id,
            owner,
            {"state": "queued", "next_us": now_us, "owner": None},
            "queue release",
            undo_attempt=True,
        )

    async def _update_claimed(
        self, op_id: str, owner: str, fields: Doc, what: str, *, undo_attempt: bool = False
    ) -> bool:
        change: Doc = {"$set": fields}
        if undo_attempt:
            change["$inc"] = {"attempts": -1}
        with mongo_errors(what):
            result = await self.ops.update_one(
                {"_id": op_id, "state": {"$eq": "running"}, "owner": {"$eq": owner}}, change
            )
        return result.modified_count == 1

    # -- tools --------------------------------------------------------------------------

    async def find(self, op_id: str) -> tuple[Doc | None, Doc | None]:
        """The operation ``op_id`` in the queue, else in the dead letters."""
        with mongo_errors("queue lookup"):
            doc = await self.ops.find_one({"_id": op_id})
            if doc is not None:
                return doc, None
            return None, await self.dead.find_one({"_id": op_id})

    async def states(self, op_ids: list[str]) -> dict[str, str]:
        """The state of each of ``op_ids`` that is in the queue (one query)."""
        with mongo_errors("queue lookup"):
            cursor = self.ops.find({"_id": {"$in": op_ids}}, projection={"state": 1})
            return {str(doc["_id"]): str(doc["state"]) async for doc in cursor}

    async def counts(self) -> dict[str, int]:
        """How many operations are in each state (dead letters as ``dead``)."""
        counts: dict[str, int] = {}
        with mongo_errors("queue statistics"):
            for state in ("queued", "running", "done", "cancelled"):
                counts[state] = await self.ops.count_documents({"state": {"$eq": state}})
            counts["dead"] = await self.dead.count_documents({})
        return counts

    async def unfinished_by_op(self) -> dict[str, int]:
        """How many operations are queued or running, by operation."""
        found: dict[str, int] = {}
        with mongo_errors("queue statistics"):
            for op in ("create", "update", "delete", "enrich", "restore"):
                n = await self.ops.count_documents(
                    {"state": {"$in": ["queued", "running"]}, "op": {"$eq": op}}
                )
                if n:
                    found[op] = n
        return found

    async def oldest_unfinished_us(self) -> int | None:
        """When the oldest operation still queued or running was queued (epoch µs)."""
        with mongo_errors("queue statistics"):
            found = await (
                self.ops.find(
                    {"state": {"$in": ["queued", "running"]}}, projection={"created_us": 1}
                )
                .sort([("created_us", ASCENDING)])
                .limit(1)
                .to_list(1)
            )
        return int(found[0]["created_us"]) if found else None

    async def dead_letters(self, filter: Mapping[str, Any], limit: int) -> list[Doc]:
        """Dead letters matching ``filter`` (op, tenant, db, collection), newest first."""
        query = {k: {"$eq": v} for k, v in filter.items()}
        with mongo_errors("dead-letter listing"):
            cursor = (
                self.dead.find(query, projection={"args.data": 0, "args.patches": 0})
                .sort([("failed_us", DESCENDING)])
                .limit(limit)
            )
            return await cursor.to_list(limit)

    async def revive(self, op_id: str, now_us: int) -> bool:
        """Move a dead letter back into the queue, due now, with its attempts reset."""
        with mongo_errors("dead-letter retry"):
            doc = await self.dead.find_one({"_id": op_id})
            if doc is None:
                return False
            for key in ("reason", "failed_us"):
                doc.pop(key, None)
            doc.update(state="queued", next_us=now_us, attempts=0, owner=None)
            try:
                await self.ops.insert_one(doc)
            except DuplicateKeyError:
                # A move to the dead letters was interrupted (it is still in the queue,
                # marked dead): make it due again. Nothing else is touched.
                await self.ops.update_one(
                    {"_id": op_id, "state": {"$eq": "dead"}},
                    {
                        "$set": {"state": "queued", "next_us": now_us, "attempts": 0},
                        "$unset": {"reason": "", "failed_us": ""},
                    },
                )
            await self.dead.delete_one({"_id": op_id})
        return True

    async def cancel(self, op_id: str, now_us: int) -> bool:
        """Cancel an operation no worker runs now (queued, or claimed by a worker whose
        claim expired); False otherwise."""
        with mongo_errors("queue cancel"):
            result = await self.ops.update_one(
                {
                    "_id": op_id,
                    "$or": [
                        {"state": {"$eq": "queued"}},
                        {"state": {"$eq": "running"}, "claim_us": {"$lt": now_us}},
                    ],
                },
                {"$set": {"state": "cancelled", "finished": datetime.now(UTC), "owner": None}},
            )
        return result.modified_count == 1
