"""GDPR purge: every byte of one record removed, a tombstone left.

``admin.purge(db=, collection=, id=, tenant=, reason=)`` goes further than a hard delete
(which it starts with, under the record's lease):

1. a tombstone is written first (``<coll>_purged``, ``state="running"``): who, when,
   why, and the record's id only as a salted SHA-256 (an id may itself be personal
   data); an interrupted purge is finished by running it again;
2. the head, every live and rolled-up version, their manifests, payloads, the copies
   made for presigned URLs and the content objects go (:func:`~._hard_delete.remove_record`);
   packs holding its payloads are rewritten without them, re-pointing the manifests of
   other records' rolled-up versions that share the pack;
3. what a hard delete leaves to ``reconcile`` goes too: every object under the record's
   key prefix in the payload, content and backups stores (withdrawn writes' payloads,
   superseded manifests), its members in *every* pack of the collection (a withdrawn
   write's member is referenced by nothing, but holds its bytes), claims without a head;
4. its idempotency-key reservations, its queued and dead-lettered fallback operations
   (they hold the data of writes not applied yet; in every backend's queue and in this
   host's spool journal) and its entries in the counters' unique-value sets;
5. the tombstone becomes ``state="done"`` with what was removed.

Counters keep the record's past events (aggregates hold no personal data). A later
``restore_collection`` cannot bring the record back: no version of it is left.
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING, Any

from chronos_async._args import check_text
from chronos_async._errors import NotFoundError, ValidationError
from chronos_async._hard_delete import remove_from_pack, remove_record
from chronos_async._keys import collection_prefix, item_prefix, validate_id
from chronos_async._scope import Scope, now_us
from chronos_async.lifecycle._reports import PurgeReport
from chronos_async.meta import mongo_errors
from chronos_async.storage import Role
from chronos_async.storage._packs import is_pack_key

if TYPE_CHECKING:
    from chronos_async._client import Chronos

__all__ = ["PurgeReport", "purge_record", "tombstone_id"]

Doc = dict[str, Any]
_DELETE_BATCH = 500
_ROLES: tuple[Role, ...] = ("json", "content", "backups")


def tombstone_id(t: str, db: str, collection: str, item_id: str) -> str:
    """The tombstone ``_id`` of a record: SHA-256 of its full name (the id is not kept)."""
    name = f"chronos-purge\x00{t}\x00{db}\x00{collection}\x00{item_id}"
    return hashlib.sha256(name.encode()).hexdigest()


async def purge_record(
    chronos: Chronos,
    *,
    db: str,
    collection: str,
    item_id: str,
    tenant: str | None,
    actor: str | None,
    reason: str,
) -> PurgeReport:
    """See the module docstring."""
    if not chronos.config.hard_delete_enabled:
        raise ValidationError("purge is a hard delete: set hard_delete_enabled in the config")
    reason_text = check_text(reason, "reason")
    if not reason_text:
        raise ValidationError("a purge needs a reason (it is kept on the tombstone)")
    actor = check_text(actor, "actor")
    item_id = validate_id(item_id)
    scope: Scope = chronos.collection(collection, db=db, tenant=tenant)._scope
    await scope.ready()
    tomb = scope.repo.db[f"{scope.collection}_purged"]
    tid = tombstone_id(scope.t, scope.db, scope.collection, item_id)
    started = now_us()
    base = {"_id": tid, "t": scope.t, "started_us": started, "actor": actor, "reason": reason_text}

    async def tombstone(**state: Any) -> None:
        with mongo_errors("purge tombstone"):
            await tomb.replace_one({"_id": tid}, {**base, **state}, upsert=True)

    await tombstone(state="running")
    found, versions, objects, packs = True, 0, 0, 0
    try:
        removed = await remove_record(scope, item_id, expected=None, purge=True)
        versions, objects, packs = (
            removed.versions,
            removed.objects + removed.manifests,
            removed.packs,
        )
    except NotFoundError:
        found = False
    await scope.repo.delete_versions(scope.t, item_id)  # claims left without a head
    objects += await _sweep_prefix(scope, item_id)
    packs += await _sweep_packs(scope, item_id)
    queued = await _drop_queued(chronos, scope, item_id)
    keys = await _drop_idempotency(scope, item_id)
    unique = 0
    if scope.counting is not None:
        unique = await scope.counting.repo.forget_record(scope.counting.key, item_id)
    report = PurgeReport(tid, found, versions, objects, packs, queued, keys, unique)
    await tombstone(
        state="done",
        purged_us=now_us(),
        found=found,
        versions=versions,
        objects=objects,
        packs=packs,
    )
    return report


async def _sweep_prefix(scope: Scope, item_id: str) -> int:
    """Delete every object under the record's prefix, in each store role (never a pack:
    an id may spell a pack folder's name)."""
    prefix = item_prefix(scope.tenant, scope.db, scope.collection, item_id)
    deleted = 0
    for role in _ROLES:
        keys = [
            info.key
            async for info in scope.store.list(prefix, role=role)
            if not is_pack_key(info.key)
        ]
        for start in range(0, len(keys), _DELETE_BATCH):
            await scope.store.delete(keys[start : start + _DELETE_BATCH], role=role)
        deleted += len(keys)
    return deleted


async def _sweep_packs(scope: Scope, item_id: str) -> int:
    """Rewrite every pack of the collection that still holds a member of the record
    (each pack's trailer is read: one ranged GET per pack of the collection)."""
    from chronos_async._pack_admin import pack_members

    mine = f"{scope.t}/{item_id}/"
    rewritten = 0
    folder = f"{collection_prefix(scope.tenant, scope.db, scope.collection)}_packs/"
    packs = [info.key async for info in scope.store.list(folder) if is_pack_key(info.key)]
    for key in packs:
        members = await pack_members(scope.store, key)
        if any(m.vid.startswith(mine) for m in members):
            await remove_from_pack(scope, key, move_rolled_up=True)
            rewritten += 1
    return rewritten


async def _drop_queued(chronos: Chronos, scope: Scope, item_id: str) -> int:
    """Delete the record's fallback operations, queued or dead (every backend's queue)."""
    fallback = chronos.fallback
    if not fallback.enabled:
        return 0
    query = {
        "db": {"$eq": scope.db},
        "collection": {"$eq": scope.collection},
        "tenant": {"$eq": scope.tenant},
        "args.id": {"$eq": item_id},
    }
    removed = 0
    with mongo_errors("fallback queue purge"):
        for queue in fallback.queues:
            removed += (await queue.ops.delete_many(query)).deleted_count
            removed += (await queue.dead.delete_many(query)).deleted_count
    if fallback.spool is not None:  # this host's journal of writes MongoDB did not take

        def mine(doc: Doc) -> bool:
            args = doc.get("args") or {}
            return (doc.get("db"), doc.get("collection"), doc.get("tenant"), args.get("id")) == (
                scope.db,
                scope.collection,
                scope.tenant,
                item_id,
            )

        removed += await fallback.spool.forget(mine)
    return removed


async def _drop_idempotency(scope: Scope, item_id: str) -> int:
    """Delete the record's idempotency-key reservations (they name it and its result)."""
    query = {"_id": {"$regex": f"^{re.escape(scope.t)}/"}, "id": {"$eq": item_id}}
    with mongo_errors("idempotency purge"):
        return int((await scope.idem.docs.delete_many(query)).deleted_count)
