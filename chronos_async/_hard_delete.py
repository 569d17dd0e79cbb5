"""Hard delete: a record, its versions and its payloads removed for good."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from chronos_async._args import check_ov
from chronos_async._content_verify import delete_record_content
from chronos_async._errors import ValidationError, VersionConflictError
from chronos_async._keys import copy_key, head_id, validate_id
from chronos_async._lease import LeaseKeeper, take_lease
from chronos_async._models import WriteResult, from_us
from chronos_async._pack_admin import pack_info, pack_settle_us, rewrite_pack
from chronos_async._scope import Scope, now_us
from chronos_async._withdraw import guarded
from chronos_async._write import Writer, leased_attempt
from chronos_async.lifecycle._archive import Archive
from chronos_async.lifecycle._versions import rolled_range
from chronos_async.storage import BlobMissingError

__all__ = ["Removed", "hard_delete", "remove_from_pack", "remove_record"]

Doc = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Removed:
    """What :func:`remove_record` removed: versions (live and rolled up), payload and
    content objects, packs rewritten, manifests."""

    head: Doc
    versions: int
    objects: int
    packs: int
    manifests: int


async def hard_delete(writer: Writer, item_id: str, *, expected_ov: int | None) -> WriteResult:
    """Remove the record entirely: versions, head, then its payloads (in that order).

    Versions go first so that an interrupted hard delete never leaves a version that a
    later create could mistake for an unfinished one; payloads go last so a reader
    that still sees the head never finds its payload missing. A payload in a pack is
    removed by rewriting the pack without it (:func:`remove_from_pack`).
    """
    scope = writer.scope
    if not scope.config.hard_delete_enabled:
        raise ValidationError("hard delete is disabled (set hard_delete_enabled in the config)")
    item_id = validate_id(item_id)
    expected = check_ov(expected_ov, "expected_ov")
    removed = await remove_record(scope, item_id, expected=expected, purge=False)
    cv = await scope.repo.next_cv(scope.t)
    return WriteResult(id=item_id, ov=int(removed.head["ov"]), cv=cv, at=from_us(now_us()))


async def remove_record(
    scope: Scope, item_id: str, *, expected: int | None, purge: bool
) -> Removed:
    """The removal under the record's lease (a hard delete, or the first step of a purge,
    which also moves other records' rolled-up versions out of the packs it rewrites)."""
    await scope.ready()
    async with (
        scope.activity.write(f"hard delete of {scope.where(item_id)}"),
        scope.gates.hold(head_id(scope.tenant, item_id)),
    ):
        head, token = await take_lease(scope, item_id, with_inline=False)
        attempt = leased_attempt(scope, item_id, token, head)

        async def body() -> Removed:
            await scope.reach("leased", item_id, int(head["ov"]), "hard_delete")
            if expected is not None and expected != int(head["ov"]):
                raise VersionConflictError(expected, int(head["ov"]), id=item_id)
            # Only the payloads this record's versions refer to: a store shared with
            # another backend may hold a record with the same id there (orphans of
            # withdrawn attempts are left to reconcile).
            docs = [
                v async for v in scope.repo.iter_versions(scope.t, item_id, max_ov=int(head["ov"]))
            ]
            # Rolled-up versions too (chronos_async.lifecycle): their manifests go as well.
            docs += [v async for v in rolled_range(scope, item_id, 0, int(head["ov"]))]
            docs.append(head)
            own, packs = _payload_keys(scope, item_id, docs)
            await scope.repo.delete_versions(scope.t, item_id)
            # Content objects are named by content, not by attempt: they go while the
            # head still stands, so no create of the same id can be storing them again.
            content = await delete_record_content(scope, item_id, docs)
            await scope.repo.delete_head(head_id(scope.tenant, item_id), token)
            attempt.published = True
            if scope.counting is not None:
                scope.counting.retired(head, docs[:-1])
            manifests = await Archive.of(scope.repo, scope.store).forget_record(scope.t, item_id)
            await scope.store.delete(own)
            for key in packs:
                await remove_from_pack(scope, key, move_rolled_up=purge)
            return Removed(head, len(docs) - 1, len(own) + content, len(packs), manifests)

        async with LeaseKeeper(attempt):
            return await guarded(attempt, body)


def _payload_keys(scope: Scope, item_id: str, docs: list[Doc]) -> tuple[list[str], list[str]]:
    """The record's own payload objects (with the copies made for presigned URLs of its
    packed payloads), and the packs holding its other payloads."""
    own: set[str] = set()
    packs: set[str] = set()
    for doc in docs:
        if doc.get("offset") is None:
            own.add(str(doc["key"]))
            continue
        packs.add(str(doc["key"]))
        ov, sha = int(doc["ov"]), str(doc["sha256"])
        own.add(copy_key(scope.tenant, scope.db, scope.collection, item_id, ov, sha))
    return sorted(own), sorted(packs)


async def remove_from_pack(scope: Scope, key: str, *, move_rolled_up: bool = False) -> None:
    """Rewrite pack ``key`` without the payloads nothing refers to any more
    (``move_rolled_up``: see :func:`~._pack_admin.rewrite_pack`).

    A pack is rewritten only once settled (:func:`~._pack_admin.pack_settle_us`): for a
    pack written moments ago this waits until then (at most the settle age), as its
    other members' writes may not have claimed their versions yet.
    """
    try:
        info = await pack_info(scope.store, key)
    except BlobMissingError:
        return  # already rewritten by someone else
    age_us = (datetime.now(UTC) - info.modified_at).total_seconds() * 1e6
    wait_us = pack_settle_us(scope.config) - age_us
    if wait_us > 0:
        await asyncio.sleep(wait_us / 1e6)
    databases = [client[scope.db] for client in scope.store_clients]
    try:
        await rewrite_pack(
            scope.store, databases, key, size=info.size, move_rolled_up=move_rolled_up
        )
    except BlobMissingError:
        return
