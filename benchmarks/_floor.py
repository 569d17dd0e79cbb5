"""The raw floor: the I/O each operation needs, written by hand with pymongo and aioboto3.

Every figure the suite reports is a ratio to this floor, measured in the same process,
on the same servers, in alternating rounds. The floor is honest when it moves the same
bytes (the library's canonical encoding: orjson, sorted keys, plus sha256), writes
documents of the same shape into collections with the same indexes, uses clients with
the same settings, and keeps every guarantee a correct versioned store needs (immutable
payloads under a per-attempt key with a conditional PUT, a unique version claim, a
compare-and-swap head move, a lease, sha256-verified reads). It then does that in the
best order with the fewest round trips, and nothing else: no argument validation, no
error translation, no checkpoints, no lease renewal timer, no retries.

Documents mirror ``chronos_async/meta/_records.py``: ``<coll>_head``, ``<coll>_ver``
and ``<coll>_counter`` in the scenario database, the floor's collection being named
``floor`` next to the library's ``bench``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import time
from typing import Any

import orjson
from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from benchmarks._data import canonical
from benchmarks._env import INDEXED_PROPS
from benchmarks._floor_blobs import RawBlobs
from chronos_async import ChronosConfig

__all__ = ["RawCollection", "deep_merge", "open_mongo"]

Doc = dict[str, Any]
_TENANT = "_"
_LEASE_FREE = {"lease_exp": 0, "lease_token": None, "lease_owner": None}
_VERSION_ONLY = ("_id", "token", "function_id", "fence", "claim_us", "prev_at")


def now_us() -> int:
    return time.time_ns() // 1000


def open_mongo(uri: str, config: ChronosConfig) -> AsyncMongoClient[Doc]:
    """A client with exactly the options the library gives its own (``mongo_client``)."""
    opts = config.mongo_client
    return AsyncMongoClient(
        uri,
        timeoutMS=config.deadlines.mongo_ms,
        tz_aware=True,
        appname="chronos-bench-floor",
        maxPoolSize=opts.max_pool_size,
        minPoolSize=opts.min_pool_size,
        serverSelectionTimeoutMS=opts.server_selection_timeout_ms,
        connectTimeoutMS=opts.connect_timeout_ms,
        socketTimeoutMS=opts.socket_timeout_ms,
    )


def deep_merge(base: Doc, patch: Doc) -> Doc:
    """Objects merge recursively, arrays union (new elements appended), the rest replaces."""
    out = dict(base)
    for key, value in patch.items():
        old = out.get(key)
        if isinstance(value, dict) and isinstance(old, dict):
            out[key] = deep_merge(old, value)
        elif isinstance(value, list) and isinstance(old, list):
            out[key] = old + [x for x in value if x not in old]
        else:
            out[key] = value
    return out


class RawCollection:
    """One versioned collection, by hand. Every method documents its round trips."""

    def __init__(
        self,
        db: AsyncDatabase[Doc],
        name: str,
        blobs: RawBlobs,
        *,
        inline_limit: int = 16 * 1024,
        lease_ms: int = 30_000,
    ) -> None:
        self.db_name = db.name
        self.name = name
        self.blobs = blobs
        self.heads = db[f"{name}_head"]
        self.versions = db[f"{name}_ver"]
        self.counter = db[f"{name}_counter"]
        self.inline_limit = inline_limit
        self.lease_us = lease_ms * 1000
        self.owner = f"floor:{os.getpid()}"

    async def ensure_indexes(self) -> None:
        """The library's index set (inserts pay for the same index maintenance)."""
        await self.versions.create_index(
            [("t", ASCENDING), ("id", ASCENDING), ("ov", ASCENDING)], unique=True
        )
        await self.versions.create_index(
            [("t", ASCENDING), ("id", ASCENDING), ("prev_at", ASCENDING)]
        )
        await self.versions.create_index([("t", ASCENDING), ("cv", ASCENDING)])
        await self.heads.create_index([("t", ASCENDING), ("updated_us", DESCENDING)])
        await self.heads.create_index([("t", ASCENDING), ("created_us", DESCENDING)])
        for prop in INDEXED_PROPS:
            await self.heads.create_index([("t", ASCENDING), (f"meta.{prop}", ASCENDING)])

    # -- building blocks ----------------------------------------------------------------

    def key(self, item_id: str, ov: int, token: str) -> str:
        return f"{_TENANT}/{self.db_name}/{self.name}/{item_id}/v{ov}/{token}.json"

    async def next_cv(self) -> int:
        doc = await self.counter.find_one_and_update(
            {"_id": f"cv/{_TENANT}"},
            {"$inc": {"value": 1}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        assert doc is not None
        return int(doc["value"])

    async def _store(self, version: Doc, body: bytes, sha256: str) -> None:
        """PUT || cv: the payload upload overlaps the counter round trip."""
        key = self.key(version["id"], version["ov"], version["token"])
        version.update(key=key, size=len(body), sha256=sha256)
        version["inline"] = body.decode() if len(body) <= self.inline_limit else None
        _, version["cv"] = await asyncio.gather(self.blobs.put(key, body, sha256), self.next_cv())

    @staticmethod
    def _head_of(version: Doc, prev: Doc | None) -> Doc:
        """The head publishing ``version``: its commit time is read now, after the claim."""
        head = {k: v for k, v in version.items() if k not in _VERSION_ONLY}
        head["_id"] = f"{_TENANT}/{version['id']}"
        at = max(now_us(), int(version["claim_us"]) + 1)
        head.update(at=at, updated_us=at, deleted_us=None)
        if head.get("created_us") is None:
            head["created_us"] = at
        if prev is not None:
            head["lease_fence"] = prev.get("lease_fence", 0)
        head.update(_LEASE_FREE)
        return head

    async def _lease(self, item_id: str, *, with_inline: bool) -> Doc:
        """Lease + read the head: one find_one_and_update (the lease lives on the head)."""
        now = now_us()
        head = await self.heads.find_one_and_update(
            {"_id": f"{_TENANT}/{item_id}", "lease_exp": {"$lt": now}},
            {
                "$set": {
                    "lease_exp": now + self.lease_us,
                    "lease_token": secrets.token_hex(8),
                    "lease_owner": self.owner,
                },
                "$inc": {"lease_fence": 1},
            },
            projection=None if with_inline else {"inline": 0},
            return_document=ReturnDocument.AFTER,
        )
        if head is None:
            raise RuntimeError(f"floor: record {item_id} missing or leased")
        return head

    def _next_version(self, head: Doc, op: str, meta: Doc) -> Doc:
        ov = int(head["ov"]) + 1
        return {
            "_id": f"{_TENANT}/{head['id']}/{ov}",
            "t": _TENANT,
            "id": head["id"],
            "ov": ov,
            "prev_at": int(head["at"]),
            "token": secrets.token_hex(8),
            "fence": int(head.get("lease_fence") or 0),
            "created_us": head["created_us"],
            "op": op,
            "actor": "bench",
            "reason": None,
            "deleted": False,
            "parent_id": head.get("parent_id"),
            "origin_id": head.get("origin_id"),
            "function_ids": list(head.get("function_ids") or []),
            "function_id": None,
            "meta": meta,
            "restored_from": None,
        }

    async def _publish(self, version: Doc, prev: Doc) -> None:
        """Claim (insert the version), then the head compare-and-swap (frees the lease)."""
        version["claim_us"] = max(now_us(), int(version["prev_at"]) + 1)
        await self.versions.insert_one(version)
        moved = await self.heads.replace_one(
            {"_id": f"{_TENANT}/{version['id']}", "ov": {"$eq": prev["ov"]}},
            self._head_of(version, prev),
        )
        if moved.matched_count != 1:
            raise RuntimeError("floor: head moved under a leased write")

    async def _data_of(self, doc: Doc) -> Doc:
        """The verified data of a head or version: inline, or one GET (of known size)."""
        inline = doc.get("inline")
        if inline is not None:
            body = inline.encode()
        else:
            body = await self.blobs.get(doc["key"], size=doc["size"])
        if hashlib.sha256(body).hexdigest() != doc["sha256"]:
            raise RuntimeError("floor: sha256 mismatch")
        data: Doc = orjson.loads(body)
        return data

    # -- writes -------------------------------------------------------------------------

    async def create(self, data: Doc) -> str:
        """Encode; PUT || cv ``$inc``; insert version; insert head. 3 Mongo trips, 1 PUT."""
        body, sha256 = canonical(data)
        return await self.create_encoded(body, sha256, {"status": data.get("status")})

    async def create_encoded(self, body: bytes, sha256: str, meta: Doc) -> str:
        """:meth:`create` for bytes already encoded (and hashed) by the caller."""
        item_id = str(ObjectId())
        version: Doc = {
            "_id": f"{_TENANT}/{item_id}/0",
            "t": _TENANT,
            "id": item_id,
            "ov": 0,
            "prev_at": -1,
            "token": secrets.token_hex(8),
            "fence": None,
            "created_us": None,
            "op": "create",
            "actor": "bench",
            "reason": None,
            "deleted": False,
            "parent_id": None,
            "origin_id": None,
            "function_ids": [],
            "function_id": None,
            "meta": meta,
            "restored_from": None,
        }
        await self._store(version, body, sha256)
        version["claim_us"] = now_us()
        await self.versions.insert_one(version)
        await self.heads.insert_one(self._head_of(version, None))
        return item_id

    async def update(self, item_id: str, data: Doc, expected_ov: int) -> int:
        """Encode (before the lease, as the library does); lease+read head; PUT || cv;
        insert version; replace head (CAS on ov). 4 Mongo trips, 1 PUT."""
        body, sha256 = canonical(data)
        head = await self._lease(item_id, with_inline=False)
        if int(head["ov"]) != expected_ov:
            raise RuntimeError("floor: version conflict")
        version = self._next_version(head, "update", {"status": data.get("status")})
        await self._store(version, body, sha256)
        await self._publish(version, head)
        return int(version["ov"])

    async def enrich(self, item_id: str, patch: Doc, function_id: str) -> int:
        """Lease+read head with its inline payload; GET when not inline; verify, merge,
        encode; PUT || cv; insert version; replace head. 4 Mongo trips, 1 PUT (+1 GET)."""
        head = await self._lease(item_id, with_inline=True)
        merged = deep_merge(await self._data_of(head), patch)
        body, sha256 = canonical(merged)
        version = self._next_version(head, "enrich", {"status": merged.get("status")})
        version["function_id"] = function_id
        if function_id not in version["function_ids"]:
            version["function_ids"].append(function_id)
        await self._store(version, body, sha256)
        await self._publish(version, head)
        return int(version["ov"])

    # -- reads --------------------------------------------------------------------------

    async def get_latest(self, item_id: str) -> Doc:
        """find_one head by ``_id``; GET when the payload is not inline; verify; decode."""
        head = await self.heads.find_one({"_id": f"{_TENANT}/{item_id}"})
        assert head is not None
        return await self._data_of(head)

    async def _head(self, item_id: str) -> Doc:
        head = await self.heads.find_one({"_id": f"{_TENANT}/{item_id}"}, {"inline": 0})
        assert head is not None
        return head

    async def get_version(self, item_id: str, ov: int) -> Doc:
        """head || versions ``ov`` and ``ov + 1`` by ``_id`` (versions above the head are
        unpublished; the successor holds the version's commit time)."""
        ids = [f"{_TENANT}/{item_id}/{ov}", f"{_TENANT}/{item_id}/{ov + 1}"]
        head, docs = await asyncio.gather(
            self._head(item_id), self.versions.find({"_id": {"$in": ids}}).to_list(2)
        )
        doc = next((d for d in docs if d["_id"] == ids[0]), None)
        if doc is None or ov > int(head["ov"]):
            raise LookupError(f"floor: no published version {ov} of {item_id}")
        return await self._data_of(doc)

    async def get_as_of(self, item_id: str, at_us: int) -> Doc | None:
        """head, then the 2 versions with the latest ``prev_at <= t`` (index t, id,
        prev_at): the first one's predecessor, or itself when it is the head's version
        and the head committed by ``t``."""
        head = await self._head(item_id)
        found = await (
            self.versions.find(
                {"t": {"$eq": _TENANT}, "id": {"$eq": item_id}, "prev_at": {"$lte": at_us}}
            )
            .sort([("prev_at", DESCENDING)])
            .limit(2)
            .to_list(2)
        )
        if not found:
            return None
        top = found[0]
        if int(top["ov"]) == int(head["ov"]) and int(head["at"]) <= at_us:
            return await self._data_of(top)
        return await self._data_of(found[1]) if len(found) > 1 else None

    async def list_page(
        self, status: str, limit: int, after: tuple[int, str] | None
    ) -> tuple[list[Doc], tuple[int, str] | None]:
        """One find: filter, sort (updated_us, _id) descending, ``limit + 1``, the same
        "strictly after" condition the library's cursor compiles to; decode each."""
        clauses: list[Doc] = [
            {"t": {"$eq": _TENANT}},
            {"meta.status": {"$eq": status}},
            {"deleted": {"$eq": False}},
        ]
        if after is not None:
            updated, hid = after
            clauses.append(
                {
                    "$or": [
                        {"updated_us": {"$lt": updated}},
                        {"$and": [{"updated_us": {"$eq": updated}}, {"_id": {"$lt": hid}}]},
                    ]
                }
            )
        docs = await (
            self.heads.find({"$and": clauses}, projection={"lease_token": 0, "lease_owner": 0})
            .sort([("updated_us", DESCENDING), ("_id", DESCENDING)])
            .limit(limit + 1)
            .to_list(limit + 1)
        )
        more = len(docs) > limit
        docs = docs[:limit]
        data = await asyncio.gather(*(self._data_of(d) for d in docs))
        last = (int(docs[-1]["updated_us"]), str(docs[-1]["_id"])) if more and docs else None
        return list(data), last

    # -- restore ------------------------------------------------------------------------

    async def restore_collection(self, target_cv: int, concurrency: int) -> tuple[int, float]:
        """Every record changed since ``target_cv`` back to its state then.

        Returns how many records it restored and how long the scan for them took (s).

        One scan of the version index ``(t, cv)`` for the changed ids, then per record
        (``concurrency`` at a time): its newest version at or before the target (one
        find, sort ov desc, limit 1, with the payload fields to reuse); lease+read head;
        cv ``$inc``; insert the restore version; replace head. 5 Mongo trips per record,
        no payload bytes moved. Only the "changed since" case is handled (the benchmark
        creates and deletes nothing after the target).
        """
        began = time.perf_counter()
        ids = {
            doc["id"]
            async for doc in self.versions.find(
                {"t": {"$eq": _TENANT}, "cv": {"$gt": target_cv}}, projection={"id": 1, "_id": 0}
            ).batch_size(1000)
        }
        scan_s = time.perf_counter() - began
        gate = asyncio.Semaphore(concurrency)

        async def one(item_id: str) -> None:
            async with gate:
                found = await (
                    self.versions.find(
                        {"t": {"$eq": _TENANT}, "id": {"$eq": item_id}, "cv": {"$lte": target_cv}}
                    )
                    .sort([("ov", DESCENDING)])
                    .limit(1)
                    .to_list(1)
                )
                target = found[0]
                head = await self._lease(item_id, with_inline=False)
                version = self._next_version(head, "restore", target.get("meta") or {})
                version.update({k: target.get(k) for k in ("key", "size", "sha256", "inline")})
                version["function_ids"] = list(target.get("function_ids") or [])
                version["restored_from"] = int(target["ov"])
                version["cv"] = await self.next_cv()
                await self._publish(version, head)

        await asyncio.gather(*(one(i) for i in sorted(ids)))
        return len(ids), scan_s
