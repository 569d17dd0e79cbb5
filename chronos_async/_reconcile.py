"""Repairing a store: roll stuck claims forward, publish orphaned creations, and remove
orphan payloads older than a grace period.

Safe to run while the application writes: a claim is rolled forward only when its
writer can no longer act on it and the record's lease is free (its writer is gone), with the same
compare-and-swap a writer uses, so it can never overwrite newer work. Orphan payloads
are removed only after ``grace_seconds`` (default an hour): a write in flight stores its
payload before it claims its version, and no write takes that long.

A payload is removed only when no version of any backend refers to it (DESIGN.md,
invariant 11). The scan already judged each store against every backend sharing it;
right before deleting, :func:`referenced_keys` asks every backend once more, by the
ids the key itself names:

- a payload key ``<tenant>/<db>/<coll>/<id>/v<ov>/<token>.json`` is written by the
  attempt that claims version ``ov`` of that record, and a restore reuses the key of the
  version it copies, whose ``v<ov>`` segment stays that of the first version. Version
  documents are removed only by a hard delete (of the whole record), so a key is in use
  exactly when version ``<tenant>/<id>/<ov>`` still exists with that key;
- the record's head is checked too (``<tenant>/<id>``), as a head may outlive its
  versions.

Both are ``_id`` lookups, batched (``$in``, :data:`LOOKUP_BATCH` ids per query), never a
collection scan. A key that is not a payload key cannot be looked up and is never removed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from chronos_async._errors import ValidationError
from chronos_async._keys import (
    NO_TENANT,
    head_id,
    parse_payload_key,
    validate_collection,
    validate_db,
    version_id,
)
from chronos_async._rollforward import adopt_create, publish_claim
from chronos_async._verify import CollectionScan, ReferenceCheck
from chronos_async.meta import mongo_errors

__all__ = ["LOOKUP_BATCH", "ReconcileReport", "fix_collection", "referenced_keys"]

_DELETE_BATCH = 500
#: Ids per ``$in`` query of the reference check.
LOOKUP_BATCH = 500


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    """What reconcile (or repair) changed."""

    rolled_forward: int = 0
    adopted_creates: int = 0
    orphans_removed: int = 0

    def __add__(self, other: ReconcileReport) -> ReconcileReport:
        return ReconcileReport(
            self.rolled_forward + other.rolled_forward,
            self.adopted_creates + other.adopted_creates,
            self.orphans_removed + other.orphans_removed,
        )


def _tenant(t: str) -> str | None:
    return None if t == NO_TENANT else t


async def referenced_keys(
    clients: Sequence[Any], keys: Sequence[str], *, batch: int = LOOKUP_BATCH
) -> set[str]:
    """The keys of ``keys`` that a version or head on any of ``clients`` refers to.

    Keys that are not payload keys (or name an invalid database or collection) are
    returned as well: nothing can prove them unreferenced. Raises
    :class:`~chronos_async.StorageError` when a backend does not answer, so a caller
    that deletes what is not returned deletes nothing then.

    Example::

        kept = await referenced_keys([b.client for b in chronos.backends], candidates)
        doomed = [key for key in candidates if key not in kept]
    """
    kept: set[str] = set()
    # (db, collection) -> [(key, version _id, head _id)]
    lookups: dict[tuple[str, str], list[tuple[str, str, str]]] = {}
    for key in keys:
        parsed = parse_payload_key(key)
        if parsed is None:
            kept.add(key)
            continue
        tenant, db, collection, item_id, ov, _ = parsed
        try:
            validate_db(db)
            validate_collection(collection)
        except ValidationError:
            kept.add(key)
            continue
        entry = (key, version_id(tenant, item_id, ov), head_id(tenant, item_id))
        lookups.setdefault((db, collection), []).append(entry)
    for (db, collection), entries in lookups.items():
        for start in range(0, len(entries), batch):
            chunk = entries[start : start + batch]
            found = await asyncio.gather(
                *(_referenced_in(client[db], collection, chunk) for client in clients)
            )
            kept.update(*found)
    return kept


async def _referenced_in(
    database: Any, collection: str, chunk: list[tuple[str, str, str]]
) -> set[str]:
    """The keys of ``chunk`` that this database's versions or heads refer to."""
    vids = [vid for _, vid, _ in chunk]
    hids = sorted({hid for _, _, hid in chunk})
    only_key = {"key": 1}
    with mongo_errors("payload reference check"):
        versions = {
            doc["_id"]: doc.get("key")
            async for doc in database[f"{collection}_ver"].find(
                {"_id": {"$in": vids}}, projection=only_key
            )
        }
        heads = {
            doc["_id"]: doc.get("key")
            async for doc in database[f"{collection}_head"].find(
                {"_id": {"$in": hids}}, projection=only_key
            )
        }
    return {key for key, vid, hid in chunk if versions.get(vid) == key or heads.get(hid) == key}


async def fix_collection(
    scan: CollectionScan,
    *,
    remove_orphans: bool,
    still_referenced: ReferenceCheck,
    settle_create_us: int,
) -> ReconcileReport:
    """Act on one collection's scan: publish stuck versions, optionally drop orphans.

    Stuck claims and orphaned creations are published with a new commit time (see
    :mod:`._rollforward`); a creation is adopted only when its claim is older than
    ``settle_create_us``.

    Each orphan is checked with ``still_referenced`` right before it is deleted (in
    batches); one that some backend now refers to is kept.
    """
    rolled = adopted = removed = 0
    for part in scan.backends:
        repo = part.repo
        for t, item_id, head_ov in part.stuck_claims:
            if await publish_claim(repo, _tenant(t), item_id, head_ov):
                rolled += 1
        for t, item_id in part.orphan_creates:
            if await adopt_create(repo, _tenant(t), item_id, settle_create_us):
                adopted += 1
    if remove_orphans:
        for store, keys in scan.orphans:
            for start in range(0, len(keys), _DELETE_BATCH):
                batch = keys[start : start + _DELETE_BATCH]
                kept = await still_referenced(batch)
                doomed = [key for key in batch if key not in kept]
                if doomed:
                    await store.delete(doomed)
                    removed += len(doomed)
    return ReconcileReport(rolled, adopted, removed)
