"""Content objects in verify, reconcile and hard delete.

Every version document lists the content objects its payload refers to (``content``:
``[{key, size, sha256}]``, see :mod:`._content`), so none of this reads a payload:

- verify collects those lists (:func:`note_content`), lists the content store under
  the collection's prefix once per store, and reports ``missing_content`` (a listed
  object is not stored), ``checksum_mismatch`` (its size, or with ``check_payloads``
  its sha256, differs) and ``orphan_content`` (a stored object no version refers to,
  older than the grace period);
- before reconcile deletes an orphan, every backend is asked once more, by the record
  its key names (:func:`content_referenced`): a content key
  ``<tenant>/<db>/<coll>/<id>/c/<sha256>.<type>`` can only be referred to by versions
  (or the head) of that record, on any backend sharing the store, or by its rolled-up
  versions (manifests, see :mod:`.lifecycle`), whose catalog documents list their
  content keys (a record with a catalog document older than that list keeps all its
  content);
- hard delete removes the record's content objects that no version on another backend
  sharing the store refers to (:func:`delete_record_content`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread

from chronos_async._codec import sha256_hex
from chronos_async._content import content_prefix, parse_content_key
from chronos_async._content_guard import ContentDeletion
from chronos_async._errors import StorageError
from chronos_async._keys import (
    NO_TENANT,
    collection_prefix,
    head_id,
    item_prefix,
    names_are_valid,
)
from chronos_async._scope import Scope
from chronos_async._verify_report import BackendScan, CollectionScan, ReferenceCheck
from chronos_async.meta import mongo_errors
from chronos_async.meta._rollup import RollupCatalog
from chronos_async.storage import BlobInfo, BlobMissingError, BlobStore

__all__ = [
    "content_referenced",
    "delete_record_content",
    "note_content",
    "remove_content_orphans",
    "scan_content",
]

Doc = dict[str, Any]
_DELETE_BATCH = 500
#: Records per query of the reference check.
_LOOKUP_BATCH = 200
#: Content objects read at once by a verify with ``check_payloads``.
_PARALLEL = 8


def note_content(part: BackendScan, t: str, docs: Iterable[Doc]) -> None:
    """Record the content objects ``docs`` (versions or a head of tenant ``t``) use."""
    for doc in docs:
        for entry in doc.get("content") or ():
            part.content.setdefault(
                str(entry["key"]),
                (t, str(doc["id"]), str(entry["sha256"]), int(entry["size"]), int(doc["ov"])),
            )


def _tenant(t: str) -> str | None:
    return None if t == NO_TENANT else t


async def scan_content(
    parts: list[BackendScan],
    db: str,
    name: str,
    scan: CollectionScan,
    *,
    grace_seconds: float,
    check_payloads: bool,
    still_referenced: ReferenceCheck | None,
) -> None:
    """Check the content store of ``parts`` (backends sharing one store) for ``db.name``."""
    store = parts[0].store
    refs: dict[str, tuple[str, str, str, int, int]] = {}
    for part in parts:
        for key, facts in part.content.items():
            refs.setdefault(key, facts)
    stored: dict[str, BlobInfo] = {}
    for t in sorted(set[str]().union(*(part.tenants for part in parts))):
        async for info in store.list(collection_prefix(_tenant(t), db, name), role="content"):
            stored[info.key] = info
    if refs or stored:
        scan.add("content_objects", len(stored))
    gate = asyncio.Semaphore(_PARALLEL)

    async def one(key: str, t: str, item_id: str, sha: str, size: int, ov: int) -> None:
        info = stored.get(key)
        if info is None:
            scan.problem("missing_content", t, item_id, ov, f"content object {key} is not stored")
            return
        if info.size != size:
            why = f"content object {key} is {info.size} bytes, not {size}"
            scan.problem("checksum_mismatch", t, item_id, ov, why)
            return
        if not check_payloads:
            return
        async with gate:
            try:
                body = await store.get(key, role="content")
            except BlobMissingError:
                scan.problem("missing_content", t, item_id, ov, f"content object {key} vanished")
                return
            except StorageError as exc:
                why = f"content object {key} unreadable: {exc}"
                scan.problem("missing_content", t, item_id, ov, why)
                return
            digest = await anyio.to_thread.run_sync(sha256_hex, body)
        scan.add("content_hashed")
        if digest != sha:
            why = f"content object {key} does not match its sha256"
            scan.problem("checksum_mismatch", t, item_id, ov, why)

    await asyncio.gather(*(one(key, *facts) for key, facts in refs.items()))

    now = datetime.now(UTC)
    candidates: list[str] = []
    for key, info in stored.items():
        if key in refs:
            continue
        if (now - info.modified_at).total_seconds() <= grace_seconds:
            scan.add("in_flight_content")
        elif parse_content_key(key) is None:
            why = f"unrecognized object {key} in the content store (reconcile leaves it)"
            scan.problem("orphan_content", key.split("/", 1)[0], None, None, why)
        else:
            candidates.append(key)
    kept = await still_referenced(store, candidates) if still_referenced and candidates else set()
    orphans = [key for key in candidates if key not in kept]
    for key in orphans:
        parsed = parse_content_key(key)
        assert parsed is not None
        why = f"unreferenced content object {key}"
        scan.problem("orphan_content", parsed[0], parsed[3], None, why)
    scan.content_orphans.append((store, orphans))


async def content_referenced(
    clients: Sequence[Any], keys: Sequence[str], *, heads: bool = True
) -> set[str]:
    """The content keys of ``keys`` that a version (or, with ``heads``, a head) on any of
    ``clients`` refers to. Keys that are not content keys, or name an invalid database
    or collection, are returned too: nothing can prove them unreferenced."""
    kept: set[str] = set()
    # (db, collection, tenant as stored) -> {id: [keys]}
    wanted: dict[tuple[str, str, str], dict[str, list[str]]] = {}
    for key in keys:
        parsed = parse_content_key(key)
        if parsed is None:
            kept.add(key)
            continue
        t, db, collection, item_id = parsed
        if not names_are_valid(db, collection):  # not a key this library wrote
            kept.add(key)
            continue
        wanted.setdefault((db, collection, t), {}).setdefault(item_id, []).append(key)
    for (db, collection, t), by_id in wanted.items():
        ids = sorted(by_id)
        for start in range(0, len(ids), _LOOKUP_BATCH):
            chunk = ids[start : start + _LOOKUP_BATCH]
            found = await asyncio.gather(
                *(_used_in(client[db], collection, t, chunk, heads) for client in clients)
            )
            used = set[str]().union(*found)
            kept.update(key for item_id in chunk for key in by_id[item_id] if key in used)
            if not heads:
                continue
            # Versions rolled up into manifests (lifecycle) are not in `_ver` any more
            # (the catalog is written before they leave it, so it is read after `_ver`).
            for item_id in chunk:
                rest = [key for key in by_id[item_id] if key not in used]
                if rest:
                    rolled = await _rolled_up_content(clients, db, collection, t, item_id)
                    kept.update(rest if rolled is None else rolled.intersection(rest))
    return kept


async def _rolled_up_content(
    clients: Sequence[Any], db: str, collection: str, t: str, item_id: str
) -> set[str] | None:
    """The content keys the record's rolled-up versions refer to, on every backend;
    ``None`` (unknown: keep all) when a catalog document predates its ``content`` list."""
    found: set[str] = set()
    for client in clients:
        for cat in await RollupCatalog(client[db], collection).for_record(t, item_id):
            if not isinstance(cat.get("content"), list):
                return None
            found.update(str(key) for key in cat["content"])
    return found


async def _used_in(database: Any, collection: str, t: str, ids: list[str], heads: bool) -> set[str]:
    """The content keys the versions (and heads) of records ``ids`` refer to."""
    used: set[str] = set()
    with mongo_errors("content reference check"):
        async for doc in database[f"{collection}_ver"].find(
            {"t": {"$eq": t}, "id": {"$in": ids}}, projection={"content": 1}
        ):
            used.update(str(e["key"]) for e in doc.get("content") or ())
        if heads:
            hids = [head_id(_tenant(t), item_id) for item_id in ids]
            async for doc in database[f"{collection}_head"].find(
                {"_id": {"$in": hids}}, projection={"content": 1}
            ):
                used.update(str(e["key"]) for e in doc.get("content") or ())
    return used


async def remove_content_orphans(
    store: BlobStore,
    keys: list[str],
    still_referenced: ReferenceCheck,
    deletion: ContentDeletion,
) -> int:
    """Delete the content objects of ``keys`` nobody refers to (checked again, in
    batches, right before each delete, under deletion marks that writers about to put
    the same objects wait for: :mod:`._content_guard`); how many went."""
    return await deletion.remove(store, keys, still_referenced)


async def delete_record_content(scope: Scope, item_id: str, docs: Iterable[Doc]) -> int:
    """Remove a hard-deleted record's content objects (those ``docs`` name, and any
    left under its prefix by withdrawn writes), except what a version of a record with
    the same id on another backend sharing the store refers to. Called once the
    record's versions are gone and before its head goes (so no create of the same id
    can have started). Returns how many objects were deleted."""
    keys = {str(e["key"]) for doc in docs for e in doc.get("content") or ()}
    prefix = content_prefix(item_prefix(scope.tenant, scope.db, scope.collection, item_id))
    keys.update([info.key async for info in scope.store.list(prefix, role="content")])
    if not keys:
        return 0
    kept = await content_referenced(scope.store_clients, sorted(keys), heads=False)
    doomed = sorted(keys - kept)
    for start in range(0, len(doomed), _DELETE_BATCH):
        await scope.store.delete(doomed[start : start + _DELETE_BATCH], role="content")
    return len(doomed)
