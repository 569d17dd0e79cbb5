"""Prune: finish what interrupted rollups left (never removes history).

- index entries whose versions a catalogued manifest already holds (a rollup stopped
  between writing its manifests and trimming the index) are deleted;
- manifest objects no catalog document names (a merge stopped between writing its new
  generation and switching the catalog, or between switching and deleting the old one)
  are deleted once older than ``grace_seconds``, so a merge in flight is never undone.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from chronos_async._errors import ChronosError
from chronos_async._keys import NO_TENANT, collection_prefix
from chronos_async.lifecycle._archive import Archive
from chronos_async.lifecycle._reports import LifecycleProgress, PruneReport
from chronos_async.lifecycle._rollup import call_progress, live_commits, remove_covered
from chronos_async.meta import mongo_errors

__all__ = ["prune_collection"]

Doc = dict[str, Any]


async def prune_collection(
    archive: Archive, *, grace_seconds: float, progress: LifecycleProgress | None = None
) -> PruneReport:
    """Prune one collection (every tenant) of one backend."""
    records: dict[tuple[str, str], None] = {}
    known: set[str] = set()
    async for cat in archive.catalog.scan(projection={"t": 1, "id": 1, "key": 1}):
        records[(str(cat["t"]), str(cat["id"]))] = None
        known.add(str(cat["key"]))
    removed = 0
    failed: list[tuple[str, str]] = []
    for done, (t, item_id) in enumerate(records, start=1):
        try:
            head = await archive.repo.find_head(f"{t}/{item_id}", with_inline=False)
            if head is not None:
                live = [
                    int(d["ov"]) for d in await live_commits(archive, t, item_id, int(head["ov"]))
                ]
                removed += await remove_covered(archive, t, item_id, live, int(head["ov"]))
        except ChronosError as exc:
            failed.append((f"{archive.db}.{archive.collection} {t}/{item_id}", str(exc)))
        await call_progress(progress, done, len(records))
    with mongo_errors("head scan"):
        tenants = {str(h["t"]) async for h in archive.repo.heads.find({}, projection={"t": 1})}
    tenants.update(t for t, _ in records)
    stale: list[str] = []
    now = datetime.now(UTC)
    for t in sorted(tenants):
        prefix = collection_prefix(None if t == NO_TENANT else t, archive.db, archive.collection)
        async for info in archive.store.list(prefix, role="backups"):
            old = (now - info.modified_at).total_seconds() > grace_seconds
            if "/rollup/" in info.key and info.key not in known and old:
                stale.append(info.key)
    if stale:
        # Checked once more right before: a merge may have catalogued one meanwhile.
        async for cat in archive.catalog.scan(projection={"key": 1}):
            known.add(str(cat["key"]))
        stale = [key for key in stale if key not in known]
        for start in range(0, len(stale), 500):
            await archive.store.delete(stale[start : start + 500], role="backups")
    return PruneReport(
        collections=1,
        records_examined=len(records),
        index_entries_removed=removed,
        stale_manifests_removed=len(stale),
        failed=tuple(failed),
    )
