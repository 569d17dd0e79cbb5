"""Packs and the versions that use them: finding referrers, rewriting a pack.

A pack's trailer lists, for each member, the version it was written for; a version
that refers to a member belongs to the member's record (a delete or restore reuses a
location of its own record), so the referrers of a pack are found with indexed lookups
of those records (versions by ``(t, id)``, heads by ``_id``), never a scan.

Rewriting a pack (compaction by ``reconcile``; removing a record's bytes by a hard
delete): the members some version still uses are copied into a new pack (each checked
against its sha256 first), every version and head that pointed into the old pack is
moved to the new one with a conditional update (only while it still points at the old
place), and the old pack is deleted once no version or head refers to it, checked
again right before. A delete or restore that copied an old location meanwhile follows
the move before it publishes (:func:`~chronos_async._rollforward.follow_moved_payload`).

Only a *settled* pack is rewritten: one old enough that no write which put a payload
into it can still claim its version (:func:`pack_settle_us`). A younger pack may have
members whose versions do not exist yet; they would look unused.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from chronos_async._codec import sha256_hex
from chronos_async._config import ChronosConfig
from chronos_async._errors import IntegrityError
from chronos_async._keys import NO_TENANT
from chronos_async.lifecycle._refs import rolled_up_spans
from chronos_async.meta import RecordRepo, mongo_errors
from chronos_async.storage import BlobInfo, BlobMissingError, BlobStore
from chronos_async.storage._packs import (
    TRAILER_LEN_BYTES,
    PackMember,
    build_pack,
    new_pack_key,
    pack_collection,
    parse_trailer,
    trailer_span,
)

__all__ = [
    "PackRewrite",
    "Place",
    "pack_info",
    "pack_members",
    "pack_referrers",
    "pack_settle_us",
    "rewrite_pack",
]

Doc = dict[str, Any]
#: A version or head pointing into a pack: its repo, ``"ver"`` or ``"head"``, the document.
Referrer = tuple[RecordRepo, str, Doc]
#: Where a pack rewrite moved each member: ``(offset, length)`` -> new offset.
Place = dict[tuple[int, int], int]


def pack_settle_us(config: ChronosConfig) -> int:
    """How old a pack must be before its unclaimed members are surely abandoned.

    A write claims its version right after its pack is stored: one store deadline for
    the PUT's reply, then at most two MongoDB deadlines (the ``cv`` allocation, the claim
    insert), plus the commit window; everything later is refused by the server.
    """
    d = config.deadlines
    return (d.store_ms + 3 * d.mongo_ms + d.commit_ms) * 1000


async def pack_info(store: BlobStore, key: str) -> BlobInfo:
    """The listing entry of pack ``key`` (:class:`BlobMissingError` if it is gone)."""
    async for info in store.list(key):
        if info.key == key:
            return info
    raise BlobMissingError("json", key)


async def pack_members(store: BlobStore, key: str, size: int | None = None) -> list[PackMember]:
    """The members a pack's trailer lists (:class:`BlobMissingError` if it is gone)."""
    if size is None:
        size = (await pack_info(store, key)).size
    if size < TRAILER_LEN_BYTES:
        raise IntegrityError(f"pack {key} is too short to hold a trailer")
    tail = await store.get_range(key, offset=size - TRAILER_LEN_BYTES, length=TRAILER_LEN_BYTES)
    offset, length = trailer_span(size, int.from_bytes(tail, "big"))
    if offset < 0 or length <= 0:
        raise IntegrityError(f"pack {key} has no readable trailer")
    return parse_trailer(await store.get_range(key, offset=offset, length=length), where=key)


async def pack_referrers(
    databases: Sequence[Any], key: str, members: Sequence[PackMember]
) -> list[Referrer]:
    """Every version and head, in any of ``databases``, that points into pack ``key``."""
    where = pack_collection(key)
    if where is None or not members:
        return []
    collection = where[2]
    hids = sorted({m.vid.rsplit("/", 1)[0] for m in members})
    tenants = sorted({hid.split("/", 1)[0] for hid in hids})
    ids = sorted({hid.split("/", 1)[1] for hid in hids})
    shape = {"_id": 1, "key": 1, "offset": 1, "length": 1}
    found: list[Referrer] = []
    with mongo_errors("pack reference check"):
        for database in databases:
            repo = RecordRepo(database, collection)
            versions = repo.versions.find(
                {"t": {"$in": tenants}, "id": {"$in": ids}, "key": {"$eq": key}}, projection=shape
            )
            found.extend([(repo, "ver", doc) async for doc in versions])
            heads = repo.heads.find({"_id": {"$in": hids}, "key": {"$eq": key}}, projection=shape)
            found.extend([(repo, "head", doc) async for doc in heads])
            # Rolled-up versions (manifests) pin the pack: their spans cannot be moved.
            records = [tuple(hid.split("/", 1)) for hid in hids]
            rolled = await rolled_up_spans(database, collection, records)  # type: ignore[arg-type]
            found.extend(
                (repo, "rollup", {"_id": f"{t}/{i}", "key": k, "offset": o, "length": n})
                for (t, i), spans in rolled.items()
                for k, o, n in spans
                if k == key
            )
    return found


async def _move_rolled_up(
    store: BlobStore, rolled: list[tuple[RecordRepo, Doc]], key: str, new_key: str, place: Place
) -> None:
    """Point the manifests of the rolled-up referrers of pack ``key`` at ``new_key``."""
    from chronos_async.lifecycle._archive import Archive  # the lifecycle builds on this module

    records = {(repo, str(doc["_id"])) for repo, doc in rolled}
    for repo, hid in sorted(records, key=lambda r: (id(r[0]), r[1])):
        t, item_id = hid.split("/", 1)
        archive = Archive.of(repo, store)
        for cat in await archive.catalog.for_record(t, item_id):
            if any(span[0] == key for span in cat.get("spans") or ()):
                await archive.repoint(cat, key, new_key, place)


@dataclass(frozen=True, slots=True)
class PackRewrite:
    """What a rewrite did: the new pack (``None`` when nothing was live), the members
    kept and dropped, the payload bytes dropped, and whether the old pack is gone."""

    new_key: str | None
    kept: int
    dropped: int
    dropped_bytes: int
    old_removed: bool


async def _copy_live(store: BlobStore, key: str, keep: list[PackMember]) -> tuple[str, Place]:
    """Write the ``keep`` members of pack ``key`` into a new pack; old span -> new offset."""
    bodies = await asyncio.gather(
        *(store.get_range(key, offset=m.offset, length=m.length) for m in keep)
    )
    for member, body in zip(keep, bodies, strict=True):
        if sha256_hex(body) != member.sha256:
            raise IntegrityError(f"member {member.vid} of pack {key} does not match its sha256")
    where = pack_collection(key)
    assert where is not None
    tenant, db, collection = where
    body, moved = build_pack([(m.vid, b, m.sha256) for m, b in zip(keep, bodies, strict=True)])
    new_key = new_pack_key(None if tenant == NO_TENANT else tenant, db, collection)
    await store.put(new_key, body, sha256=sha256_hex(body), content_type="application/octet-stream")
    return new_key, {
        (old.offset, old.length): new.offset for old, new in zip(keep, moved, strict=True)
    }


async def rewrite_pack(
    store: BlobStore,
    databases: Sequence[Any],
    key: str,
    *,
    size: int | None = None,
    move_rolled_up: bool = False,
) -> PackRewrite:
    """Rewrite settled pack ``key`` with only the members something uses (module doc).

    ``databases``: the MongoDB database of the pack's ``db`` on every backend that
    shares ``store``. A pack that rolled-up versions (manifests) point into is kept whole,
    unless ``move_rolled_up`` (a purge, which must remove its record's bytes): their
    manifests are then rewritten to point into the new pack.
    """
    if pack_collection(key) is None:
        raise ValueError(f"{key} is not a pack key")
    members = await pack_members(store, key, size)
    referrers = await pack_referrers(databases, key, members)
    rolled = [(repo, doc) for repo, kind, doc in referrers if kind == "rollup"]
    if rolled and not move_rolled_up:
        # A manifest points into it: keep it whole until ``admin.expire`` removes those
        # versions (or a purge moves them).
        return PackRewrite(None, len(members), 0, 0, False)
    live = {(int(d["offset"]), int(d["length"])) for _, _, d in referrers}
    keep = [m for m in members if (m.offset, m.length) in live]
    new_key: str | None = None
    if keep:
        new_key, place = await _copy_live(store, key, keep)
        for repo, kind, doc in referrers:
            old = (int(doc["offset"]), int(doc["length"]))
            if kind != "rollup" and old in place:  # a span that is no member keeps the old pack
                await repo.repoint_payload(kind, doc["_id"], (key, old[0]), (new_key, place[old]))
        await _move_rolled_up(store, rolled, key, new_key, place)
    removed = False
    if not await pack_referrers(databases, key, members):  # right before deleting
        await store.delete([key])
        removed = True
    return PackRewrite(
        new_key=new_key,
        kept=len(keep),
        dropped=len(members) - len(keep),
        dropped_bytes=sum(m.length for m in members if m not in keep),
        old_removed=removed,
    )
