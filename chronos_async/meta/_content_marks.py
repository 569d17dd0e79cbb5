"""The MongoDB side of the content handshake: writers' intents, reconcile's marks.

Two small collections next to a collection's records (the protocol is described in
:mod:`chronos_async._content_guard`)::

    <coll>_content_intents   {_id: <write token>, keys: [content key, ...], until_us}
    <coll>_content_deleting  {_id: "<key>#<token>", key, until_us}

Both hold a document only while a write uploads content objects, or while reconcile
deletes orphan ones, so they stay tiny; ``until_us`` (epoch µs) is when a document stops
counting (its writer or reconcile died), and :meth:`ContentMarks.sweep` removes the
expired ones. All reads and writes go to the primary (default read preference), so a
read sees every write acknowledged before it started.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from chronos_async.meta._errors import mongo_errors

__all__ = ["ContentMarks"]

Doc = dict[str, Any]


class ContentMarks:
    """Intents and deletion marks of one (database, collection) pair's content objects."""

    def __init__(self, db: AsyncDatabase[Doc], collection: str) -> None:
        self.name = collection
        self.intents = db[f"{collection}_content_intents"]
        self.marks = db[f"{collection}_content_deleting"]

    # -- writers -----------------------------------------------------------------------

    async def add_intent(self, token: str, keys: Sequence[str], until_us: int) -> None:
        """Announce that write ``token`` is about to upload ``keys`` (until ``until_us``)."""
        with mongo_errors(f"content intent on {self.name}"):
            await self.intents.insert_one({"_id": token, "keys": list(keys), "until_us": until_us})

    async def extend_intent(self, token: str, until_us: int) -> None:
        """Let intent ``token`` count until ``until_us``."""
        with mongo_errors(f"content intent on {self.name}"):
            await self.intents.update_one({"_id": token}, {"$set": {"until_us": until_us}})

    async def drop_intents(self, tokens: Sequence[str]) -> None:
        """Withdraw the intents ``tokens`` (their writes ended)."""
        with mongo_errors(f"content intent on {self.name}"):
            await self.intents.delete_many({"_id": {"$in": list(tokens)}})

    async def marked_until(self, keys: Sequence[str], now_us: int) -> int | None:
        """The latest expiry of the live deletion marks on ``keys`` (``None``: none)."""
        query = {"key": {"$in": list(keys)}, "until_us": {"$gt": now_us}}
        with mongo_errors(f"content deletion marks of {self.name}"):
            found = await self.marks.find(query, projection={"until_us": 1}).to_list(None)
        return max((int(doc["until_us"]) for doc in found), default=None)

    # -- reconcile ---------------------------------------------------------------------

    async def mark(self, token: str, keys: Sequence[str], until_us: int) -> None:
        """Mark ``keys`` as about to be deleted by reconcile run ``token``."""
        docs = [{"_id": f"{key}#{token}", "key": key, "until_us": until_us} for key in keys]
        with mongo_errors(f"content deletion marks of {self.name}"):
            await self.marks.insert_many(docs, ordered=False)

    async def unmark(self, token: str, keys: Sequence[str]) -> None:
        """Remove the marks of run ``token`` on ``keys``."""
        ids = [f"{key}#{token}" for key in keys]
        with mongo_errors(f"content deletion marks of {self.name}"):
            await self.marks.delete_many({"_id": {"$in": ids}})

    async def intended(self, keys: Sequence[str], now_us: int) -> set[str]:
        """The keys of ``keys`` a live intent names."""
        wanted = set(keys)
        query = {"keys": {"$in": sorted(wanted)}, "until_us": {"$gt": now_us}}
        found: set[str] = set()
        with mongo_errors(f"content intents of {self.name}"):
            async for doc in self.intents.find(query, projection={"keys": 1}):
                found.update(str(key) for key in doc.get("keys") or () if key in wanted)
        return found

    async def sweep(self, now_us: int) -> None:
        """Remove the intents and marks that expired before ``now_us``."""
        with mongo_errors(f"content intents of {self.name}"):
            await self.intents.delete_many({"until_us": {"$lt": now_us}})
            await self.marks.delete_many({"until_us": {"$lt": now_us}})
