"""Expire: deleting old history for good, explicitly (retention never does this).

``admin.expire(before=, keep_last=)`` removes, per record, the versions committed before
``before`` except the newest ``keep_last`` (and never the head's version):

1. they are rolled up first (:func:`~._rollup.rollup_record` with that bound), so the
   index is trimmed by the one safe path, and from here on they live only in manifests;
2. their entries are removed from the manifests (:meth:`~._archive.Archive.drop_below`:
   a reduced manifest is written and catalogued, or the catalog entry goes);
3. their payloads are deleted when no remaining version refers to them: a restore or a
   delete reuses the payload of an older version of its record, so the record's
   remaining versions (live and rolled up) and head are consulted, then every backend
   once more (:func:`~chronos_async._reconcile.referenced_keys`). A payload in a pack
   frees its bytes by a rewrite of the pack without it, or by deleting the pack once
   nothing uses it; a pack some other rolled-up version still uses is kept (counted in
   ``packs_kept``). Packs younger than the settle age are never rewritten.

Run again after an interruption, it converges: step 1 and 2 are idempotent, and
payloads left behind by a stop in step 3 are orphans that ``admin.reconcile`` removes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from chronos_async._errors import ChronosError
from chronos_async._keys import NO_TENANT, copy_key
from chronos_async._scope import now_us
from chronos_async.lifecycle._archive import Archive
from chronos_async.lifecycle._layout import Entry, Period, RetentionRule
from chronos_async.lifecycle._reports import ExpireReport, LifecycleProgress
from chronos_async.lifecycle._rollup import call_progress, live_commits, rollup_record
from chronos_async.meta import mongo_errors
from chronos_async.storage import BlobMissingError
from chronos_async.storage._packs import is_pack_key

__all__ = ["expire_collection"]

Doc = dict[str, Any]


async def _expire_bound(
    archive: Archive, t: str, item_id: str, head: Doc, before_us: int, keep_last: int
) -> int:
    """The first ``ov`` that survives: versions below it are expired."""
    head_ov = int(head["ov"])
    cap = max(0, min(head_ov + 1 - keep_last, head_ov))
    light = await live_commits(archive, t, item_id, head_ov)
    prev_at = {int(d["ov"]): int(d["prev_at"]) for d in light}
    bound = 0
    for cat in await archive.catalog.for_record(t, item_id):
        if int(cat["last_at"]) < before_us:
            bound = max(bound, int(cat["last_ov"]) + 1)
        elif int(cat["first_at"]) < before_us:
            loaded = await archive.entries(cat)
            if loaded is not None:
                older = [e.ov for e in loaded[1] if e.at < before_us]
                bound = max(bound, max(older, default=-1) + 1)
    for ov in sorted(prev_at):
        if ov < head_ov and ov + 1 in prev_at and prev_at[ov + 1] < before_us:
            bound = max(bound, ov + 1)
    return min(bound, cap)


async def _remaining_refs(archive: Archive, t: str, item_id: str) -> set[str]:
    """Every payload key the record still refers to (live versions, head, manifests)."""
    keys: set[str] = set()
    with mongo_errors("payload reference check"):
        async for doc in archive.repo.versions.find(
            {"t": {"$eq": t}, "id": {"$eq": item_id}}, projection={"key": 1}
        ):
            keys.add(str(doc["key"]))
    head = await archive.repo.find_head(f"{t}/{item_id}", with_inline=False)
    if head is not None:
        keys.add(str(head["key"]))
    for cat in await archive.catalog.for_record(t, item_id):
        keys.update(str(span[0]) for span in cat.get("spans") or ())
    return keys


async def _reclaim(
    archive: Archive,
    t: str,
    item_id: str,
    dropped: Sequence[Entry],
    clients: Sequence[Any],
    settle_us: int,
) -> dict[str, int]:
    """Delete the payloads of ``dropped`` that nothing refers to any more."""
    from chronos_async._pack_admin import pack_info, rewrite_pack
    from chronos_async._reconcile import referenced_keys

    out = {"payloads": 0, "packs_removed": 0, "packs_rewritten": 0, "packs_kept": 0, "bytes": 0}
    remaining = await _remaining_refs(archive, t, item_id)
    tenant = None if t == NO_TENANT else t
    singles: dict[str, int] = {}
    copies: list[str] = []
    packs: set[str] = set()
    for entry in dropped:
        doc = entry.doc
        key = str(doc["key"])
        if doc.get("offset") is not None:
            packs.add(key)
            copies.append(
                copy_key(tenant, archive.db, archive.collection, item_id, entry.ov, doc["sha256"])
            )
        elif key not in remaining:
            singles[key] = int(doc.get("size") or 0)
    doomed = sorted(singles)
    if doomed:
        kept = await referenced_keys(clients, doomed, store=archive.store)
        doomed = [key for key in doomed if key not in kept]
        for start in range(0, len(doomed), 500):
            await archive.store.delete(doomed[start : start + 500])
        out["payloads"] += len(doomed)
        out["bytes"] += sum(singles[key] for key in doomed)
    if copies:
        await archive.store.delete(sorted(set(copies)))
    databases = [client[archive.db] for client in clients]
    now = datetime.now(UTC)
    for key in sorted(packs - {k for k in remaining if is_pack_key(k)}):
        try:
            info = await pack_info(archive.store, key)
            if (now - info.modified_at).total_seconds() * 1e6 < settle_us:
                out["packs_kept"] += 1
                continue
            done = await rewrite_pack(archive.store, databases, key, size=info.size)
        except BlobMissingError:
            continue
        if done.old_removed and done.new_key is None:
            out["packs_removed"] += 1
            out["bytes"] += info.size
        elif done.old_removed:
            out["packs_rewritten"] += 1
            out["bytes"] += done.dropped_bytes
        else:
            out["packs_kept"] += 1
    out["packs_kept"] += len(packs & remaining)
    return out


async def expire_collection(
    archive: Archive,
    *,
    before_us: int,
    keep_last: int,
    clients: Sequence[Any],
    settle_us: int,
    period: Period,
    keys_ttl_us: int,
    progress: LifecycleProgress | None = None,
) -> ExpireReport:
    """Expire old history in one collection (every tenant) of one backend."""
    await archive.catalog.ensure_indexes()
    with mongo_errors("head scan"):
        heads = await archive.repo.heads.find(
            {}, projection={"t": 1, "id": 1, "ov": 1, "at": 1}
        ).to_list(None)
    totals = {"changed": 0, "versions": 0, "manifests": 0}
    freed = {"payloads": 0, "packs_removed": 0, "packs_rewritten": 0, "packs_kept": 0, "bytes": 0}
    failed: list[tuple[str, str]] = []
    for done, head in enumerate(heads, start=1):
        t, item_id = str(head["t"]), str(head["id"])
        try:
            bound = await _expire_bound(archive, t, item_id, head, before_us, keep_last)
            if bound > 0:
                now = now_us()
                await rollup_record(
                    archive,
                    t,
                    item_id,
                    rule=RetentionRule(),
                    period=period,
                    now=now,
                    bound=bound,
                    keys_since=now - keys_ttl_us,
                )
                # What stayed live (a version with an unexpired idempotency key) stays.
                live = await live_commits(archive, t, item_id, int(head["ov"]))
                bound = min([bound, *(int(d["ov"]) for d in live[:1])])
                dropped: list[Entry] = []
                for cat in await archive.catalog.for_record(t, item_id):
                    if int(cat["first_ov"]) < bound:
                        switch = await archive.drop_below(cat, bound)
                        dropped.extend(switch.dropped)
                        totals["manifests"] += int(switch.changed and not switch.written)
                if dropped:
                    totals["changed"] += 1
                    totals["versions"] += len(dropped)
                    got = await _reclaim(archive, t, item_id, dropped, clients, settle_us)
                    for name, value in got.items():
                        freed[name] += value
        except ChronosError as exc:
            failed.append((f"{archive.db}.{archive.collection} {t}/{item_id}", str(exc)))
        await call_progress(progress, done, len(heads))
    return ExpireReport(
        collections=1,
        records_examined=len(heads),
        records_changed=totals["changed"],
        versions_removed=totals["versions"],
        payloads_removed=freed["payloads"],
        packs_removed=freed["packs_removed"],
        packs_rewritten=freed["packs_rewritten"],
        packs_kept=freed["packs_kept"],
        bytes_removed=freed["bytes"],
        manifests_removed=totals["manifests"],
        failed=tuple(failed),
    )
