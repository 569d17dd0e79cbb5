"""Versions that left the live index, read back from their manifests (slower, same answers).

The read paths ask the index first and come here only when it does not hold a version
they need: a record never rolled up has no catalog document, so this costs it at most
one indexed query that finds nothing. Every document returned has its commit time
filled in (:func:`~chronos_async._asof.finalized`), like the documents the read paths
build from the index.

:func:`iter_all_versions` walks a record's whole history in ``ov`` order, live and
rolled up, for subsystems that must see every version (counters recount, verify).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from chronos_async._asof import finalized
from chronos_async._keys import head_id
from chronos_async._scope import Scope
from chronos_async.lifecycle._archive import Archive
from chronos_async.lifecycle._layout import Entry
from chronos_async.meta import mongo_errors

__all__ = [
    "iter_all_versions",
    "rolled_as_of",
    "rolled_at_cv",
    "rolled_range",
    "rolled_version",
    "versions_newest_first",
]

Doc = dict[str, Any]


def _archive(scope: Scope) -> Archive:
    return Archive.of(scope.repo, scope.store)


def _doc(entry: Entry) -> Doc:
    return finalized(entry.doc, entry.at)


async def rolled_version(scope: Scope, item_id: str, ov: int) -> Doc | None:
    """Version ``ov`` from the manifests (commit time filled in), or ``None``."""
    archive = _archive(scope)
    cat = await archive.catalog.covering_ov(scope.t, item_id, ov)
    loaded = await archive.entries(cat) if cat is not None else None
    if loaded is None:
        return None
    return next((_doc(e) for e in loaded[1] if e.ov == ov), None)


async def rolled_as_of(scope: Scope, item_id: str, at_us: int) -> Doc | None:
    """The newest rolled-up version committed at or before ``at_us``, or ``None``.

    Callers ask only when the live index has no answer, so this is the answer: the
    versions after it are live and were committed after ``at_us``.
    """
    archive = _archive(scope)
    cat = await archive.catalog.latest_at_or_before(scope.t, item_id, at_us)
    loaded = await archive.entries(cat) if cat is not None else None
    if loaded is None:
        return None
    found = [e for e in loaded[1] if e.at <= at_us]
    return _doc(found[-1]) if found else None


async def rolled_at_cv(scope: Scope, item_id: str, cv: int) -> Doc | None:
    """The newest rolled-up version with a ``cv`` at or below ``cv``, or ``None``."""
    archive = _archive(scope)
    cat = await archive.catalog.latest_cv_at_or_before(scope.t, item_id, cv)
    loaded = await archive.entries(cat) if cat is not None else None
    if loaded is None:
        return None
    found = [e for e in loaded[1] if int(e.doc["cv"]) <= cv]
    return _doc(found[-1]) if found else None


async def rolled_range(
    scope: Scope, item_id: str, low: int, high: int, *, newest_first: bool = False
) -> AsyncIterator[Doc]:
    """The rolled-up versions with ``low <= ov <= high`` (one manifest in memory at once)."""
    if high < low:
        return
    archive = _archive(scope)
    cats = [
        c
        for c in await archive.catalog.for_record(scope.t, item_id)
        if int(c["last_ov"]) >= low and int(c["first_ov"]) <= high
    ]
    for cat in reversed(cats) if newest_first else cats:
        loaded = await archive.entries(cat)
        if loaded is None:
            continue
        entries = [e for e in loaded[1] if low <= e.ov <= high]
        for entry in reversed(entries) if newest_first else entries:
            yield _doc(entry)


async def versions_newest_first(
    scope: Scope, item_id: str, head: Doc, *, with_inline: bool, batch_size: int = 100
) -> AsyncIterator[Doc]:
    """Every published version of the record, newest first, commit times filled in.

    The live index is read first; whatever it lacks below the head (rolled up, possibly
    while this runs) comes from the manifests.
    """
    expected = int(head["ov"])
    at = int(head["at"])
    live = scope.repo.iter_versions(
        scope.t, item_id, max_ov=expected, batch_size=batch_size, with_inline=with_inline
    )
    async for raw in live:
        ov = int(raw["ov"])
        if ov < expected:
            async for doc in rolled_range(scope, item_id, ov + 1, expected, newest_first=True):
                yield doc
                at = int(doc["prev_at"])
        if ov > expected:
            continue  # already given from a manifest (rolled up and seen twice)
        yield finalized(raw, at)
        at = int(raw["prev_at"])
        expected = ov - 1
    if expected >= 0:
        async for doc in rolled_range(scope, item_id, 0, expected, newest_first=True):
            yield doc


async def iter_all_versions(
    scope: Scope, item_id: str, *, with_inline: bool = True, batch_size: int = 100
) -> AsyncIterator[Doc]:
    """Every published version of a record in ``ov`` order (rolled up, then live).

    Each document is the version document as stored (every field, whatever subsystem
    added it) with its commit time in ``at``. Nothing for a record without a head. One
    manifest and one batch of the index are in memory at a time.

    Example::

        async for version in iter_all_versions(users._scope, "u1"):
            total += version["size"]
    """
    head = await scope.repo.find_head(head_id(scope.tenant, item_id), with_inline=False)
    if head is None:
        return
    head_ov = int(head["ov"])
    nxt = 0
    async for doc in rolled_range(scope, item_id, 0, head_ov - 1):
        if int(doc["ov"]) == nxt:
            yield doc
            nxt += 1
    query = {"t": {"$eq": scope.t}, "id": {"$eq": item_id}, "ov": {"$gte": nxt, "$lte": head_ov}}
    with mongo_errors("version read"):
        cursor = (
            scope.repo.versions.find(query, projection=None if with_inline else {"inline": 0})
            .sort([("ov", 1)])
            .batch_size(batch_size)
        )
    held: Doc | None = None
    async for raw in _guarded(cursor.__aiter__()):
        ov = int(raw["ov"])
        low = nxt if held is None else int(held["ov"]) + 1
        # A gap: rolled up while this ran (a prefix, so what was read before is too).
        gap = [d async for d in rolled_range(scope, item_id, low, ov - 1)] if ov > low else []
        if held is not None:
            yield finalized(held, int((gap[0] if gap else raw)["prev_at"]))
        for doc in gap:
            yield doc
        held = raw
    if held is not None:
        yield finalized(held, int(head["at"]))


async def _guarded(source: AsyncIterator[Doc]) -> AsyncIterator[Doc]:
    while True:
        with mongo_errors("version read"):
            try:
                doc = await anext(source)
            except StopAsyncIteration:
                return
        yield doc
