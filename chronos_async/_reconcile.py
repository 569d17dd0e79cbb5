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
  version it copies, whose ``v<ov>`` segment stays that of the first version. A key is
  in use when version ``<tenant>/<id>/<ov>`` still exists with that key; when it does
  not (rolled up into a manifest, or expired while a later version reuses its payload),
  the record's manifests and live versions are asked too (:mod:`.lifecycle._refs`);
- the record's head is checked too (``<tenant>/<id>``), as a head may outlive its
  versions.

Both are ``_id`` lookups, batched (``$in``, :data:`LOOKUP_BATCH` ids per query), never a
collection scan. A key that is not a payload key cannot be looked up and is never removed.

- a content object (externalized ``base64_props``, in the content store) is in use while
  a version or the head of the record its key names lists it in ``content``
  (:func:`~._content_verify.content_referenced`); reconcile removes unused ones too,
  under deletion marks that writers putting the same object wait for
  (:mod:`._content_guard`).

- the stand-alone copy of a packed payload (made for a presigned URL) is a payload key
  whose token is the start of the payload's sha256: it is in use while version
  ``<tenant>/<id>/<ov>`` exists with that sha256 (:func:`~._keys.is_copy_key`);
- a pack is in use while any version or head points into it: its trailer names the
  records it holds, whose versions and heads are looked up by index
  (:func:`~._pack_admin.pack_referrers`). A pack whose trailer cannot be read is kept.

Compaction (``compact_below``): a settled pack whose live bytes are a smaller share of it
than ``compact_below`` is rewritten with only its live members (:mod:`._pack_admin`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from chronos_async._content import parse_content_key
from chronos_async._content_guard import ContentDeletion
from chronos_async._content_verify import content_referenced, remove_content_orphans
from chronos_async._errors import IntegrityError
from chronos_async._keys import (
    NO_TENANT,
    head_id,
    is_copy_key,
    names_are_valid,
    parse_payload_key,
    version_id,
)
from chronos_async._models import Summable
from chronos_async._pack_admin import pack_members, pack_referrers, rewrite_pack
from chronos_async._rollforward import adopt_create, publish_claim
from chronos_async._verify import CollectionScan, ReferenceCheck
from chronos_async.lifecycle._refs import rolled_up_users
from chronos_async.meta import RecordRepo, mongo_errors
from chronos_async.storage import BlobMissingError, BlobStore
from chronos_async.storage._packs import is_pack_key, pack_collection

__all__ = [
    "LOOKUP_BATCH",
    "Compaction",
    "Counted",
    "ReconcileReport",
    "fix_collection",
    "referenced_keys",
]

#: ``counted(repo, tenant, version)``: a version a repair published (for the counters).
Counted = Callable[[RecordRepo, str | None, dict[str, Any]], None]

_DELETE_BATCH = 500
#: Ids per ``$in`` query of the reference check.
LOOKUP_BATCH = 500


@dataclass(frozen=True, slots=True)
class ReconcileReport(Summable):
    """What reconcile (or repair) changed."""

    rolled_forward: int = 0
    adopted_creates: int = 0
    orphans_removed: int = 0
    #: Packs rewritten with only their live members, and the bytes that freed.
    packs_compacted: int = 0
    pack_bytes_reclaimed: int = 0
    #: Content objects (externalized ``base64_props``) no version referred to.
    content_removed: int = 0


def _tenant(t: str) -> str | None:
    return None if t == NO_TENANT else t


async def referenced_keys(
    clients: Sequence[Any],
    keys: Sequence[str],
    *,
    store: BlobStore | None = None,
    batch: int = LOOKUP_BATCH,
) -> set[str]:
    """The keys of ``keys`` that a version or head on any of ``clients`` refers to.

    Keys that are not payload keys (or name an invalid database or collection) are
    returned as well: nothing can prove them unreferenced; so are pack keys when no
    ``store`` (the one holding them) is given to read their trailers from. Raises
    :class:`~chronos_async.StorageError` when a backend does not answer, so a caller
    that deletes what is not returned deletes nothing then.

    Example::

        kept = await referenced_keys([b.client for b in chronos.backends], candidates)
        doomed = [key for key in candidates if key not in kept]
    """
    kept: set[str] = set()
    # (db, collection) -> [(key, version _id, head _id)]
    lookups: dict[tuple[str, str], list[tuple[str, str, str]]] = {}
    content = {key for key in keys if parse_content_key(key) is not None}
    if content:  # content objects: referred to by the versions of the record they name
        kept.update(await content_referenced(clients, sorted(content)))
    for key in keys:
        if key in content:
            continue
        if is_pack_key(key):
            if store is None or await _pack_in_use(clients, store, key):
                kept.add(key)
            continue
        parsed = parse_payload_key(key)
        if parsed is None:
            kept.add(key)
            continue
        tenant, db, collection, item_id, ov, _ = parsed
        if not names_are_valid(db, collection):  # not a key this library wrote
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
    shape = {"key": 1, "offset": 1, "sha256": 1}
    with mongo_errors("payload reference check"):
        versions = {
            doc["_id"]: doc
            async for doc in database[f"{collection}_ver"].find(
                {"_id": {"$in": vids}}, projection=shape
            )
        }
        heads = {
            doc["_id"]: doc.get("key")
            async for doc in database[f"{collection}_head"].find(
                {"_id": {"$in": hids}}, projection={"key": 1}
            )
        }

    def used(key: str, vid: str, hid: str) -> bool:
        version = versions.get(vid)
        if version is not None and (version.get("key") == key or is_copy_key(key, version)):
            return True
        return heads.get(hid) == key

    kept = {key for key, vid, hid in chunk if used(key, vid, hid)}
    # Not found by its own version: a rolled-up version (in a manifest) or a later live
    # version reusing it may still refer to it (lifecycle: retention and rollup).
    rest = [(key, *hid.split("/", 1)) for key, vid, hid in chunk if key not in kept]
    if rest:
        with mongo_errors("payload reference check"):
            kept |= await rolled_up_users(database, collection, [(k, t, i) for k, t, i in rest])
    return kept


async def _pack_in_use(clients: Sequence[Any], store: BlobStore, key: str) -> bool:
    """Whether any version or head on ``clients`` points into pack ``key`` of ``store``."""
    where = pack_collection(key)
    assert where is not None
    try:
        members = await pack_members(store, key)
    except BlobMissingError:
        return False  # gone already: deleting it again is harmless
    except IntegrityError:
        return True  # unreadable trailer: nothing proves it unused
    return bool(await pack_referrers([client[where[1]] for client in clients], key, members))


@dataclass(frozen=True, slots=True)
class Compaction:
    """Which packs reconcile rewrites: settled ones (older than ``min_age_seconds``)
    whose live bytes are below ``below`` of their size; ``clients`` are every backend's
    MongoDB client (where versions pointing into a pack may live)."""

    below: float
    min_age_seconds: float
    clients: Sequence[Any]


async def fix_collection(
    scan: CollectionScan,
    *,
    remove_orphans: bool,
    still_referenced: ReferenceCheck,
    settle_create_us: int,
    compaction: Compaction | None = None,
    counted: Counted | None = None,
    content_deletion: ContentDeletion | None = None,
) -> ReconcileReport:
    """Act on one collection's scan: publish stuck versions, optionally drop orphans
    and compact sparse packs.

    Stuck claims and orphaned creations are published with a new commit time (see
    :mod:`._rollforward`); a creation is adopted only when its claim is older than
    ``settle_create_us``.

    Each orphan is checked with ``still_referenced`` right before it is deleted (in
    batches); one that some backend now refers to is kept. ``counted(repo, tenant,
    version)`` is told of each version published here (the counters count it).
    Orphan content objects are deleted under ``content_deletion``'s marks (by default
    on the backends of ``scan``; see :mod:`._content_guard`).
    """
    rolled = adopted = removed = 0
    for part in scan.backends:
        repo = part.repo
        for t, item_id, head_ov in part.stuck_claims:
            moved = await publish_claim(repo, _tenant(t), item_id, head_ov)
            if moved is not None:
                rolled += 1
                if counted is not None:
                    counted(repo, _tenant(t), moved)
        for t, item_id in part.orphan_creates:
            made = await adopt_create(repo, _tenant(t), item_id, settle_create_us)
            if made is not None:
                adopted += 1
                if counted is not None:
                    counted(repo, _tenant(t), made)
    if remove_orphans:
        for store, keys in scan.orphans:
            for start in range(0, len(keys), _DELETE_BATCH):
                batch = keys[start : start + _DELETE_BATCH]
                kept = await still_referenced(store, batch)
                doomed = [key for key in batch if key not in kept]
                if doomed:
                    await store.delete(doomed)
                    removed += len(doomed)
    content_removed = 0
    if remove_orphans and scan.content_orphans:
        if content_deletion is None:
            clients = [part.repo.db.client for part in scan.backends]
            content_deletion = ContentDeletion(clients)
        for store, keys in scan.content_orphans:
            content_removed += await remove_content_orphans(
                store, keys, still_referenced, content_deletion
            )
    report = ReconcileReport(rolled, adopted, removed, content_removed=content_removed)
    if compaction is not None:
        report += await _compact(scan, compaction)
    return report


async def _compact(scan: CollectionScan, compaction: Compaction) -> ReconcileReport:
    """Rewrite the settled packs of ``scan`` whose live share is below the threshold."""
    compacted = reclaimed = 0
    databases = [client[scan.db] for client in compaction.clients]
    for use in scan.packs:
        if use.age_seconds < compaction.min_age_seconds or use.live_ratio >= compaction.below:
            continue
        try:
            done = await rewrite_pack(use.store, databases, use.key, size=use.size)
        except BlobMissingError:
            continue  # rewritten meanwhile by someone else
        if done.old_removed:
            compacted += 1
            reclaimed += use.size - use.live_bytes
    return ReconcileReport(packs_compacted=compacted, pack_bytes_reclaimed=reclaimed)
