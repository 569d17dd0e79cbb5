"""Rollup: moving the versions beyond a record's retention bound out of the live index.

Per record, with the record's live index read once (``ov`` and ``prev_at`` only):

1. choose the bound (:func:`~._layout.rollup_bound`): versions ``floor .. bound-1`` go,
   ``bound .. head`` stay (the head's version always stays; versions above the head are
   claims of writers in flight and are never read or touched);
2. in chunks, in ``ov`` order: read the full version documents, bucket them by the
   period of their commit time, merge each bucket into the record's manifest for that
   period (:meth:`~._archive.Archive.merge`: written, read back, catalogued);
3. only then delete those version documents from ``<coll>_ver``.

A version is thus in the index, or in a catalogued manifest, or in both, at every
instant: readers that miss it in the index find it through the catalog. Run again after
a crash at any point, the same steps converge: entries already in a manifest are not
added twice, index entries the catalog already covers are deleted first. Writers are
never blocked: rollup takes no lease and only touches versions below the head, which
nothing changes any more (a pack rewrite may move one's payload; the old pack is kept
while a manifest refers to it, see :mod:`chronos_async._pack_admin`).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from itertools import groupby
from typing import Any

from chronos_async._config import ChronosConfig
from chronos_async._errors import ChronosError, IntegrityError, StorageError
from chronos_async._scope import now_us
from chronos_async.lifecycle._archive import Archive
from chronos_async.lifecycle._layout import Entry, Period, RetentionRule, period_of, rollup_bound
from chronos_async.lifecycle._reports import LifecycleProgress, RollupReport
from chronos_async.meta import mongo_errors

__all__ = [
    "Hook",
    "RecordRollup",
    "live_commits",
    "remove_covered",
    "rollup_collection",
    "rollup_record",
    "rule_for",
]

Doc = dict[str, Any]
#: ``hook(point, record_hid)`` at named points ("manifested": manifests written, index
#: entries not yet deleted); a test raises there to simulate a crash.
Hook = Callable[[str, str], Awaitable[None]]
#: Versions read and archived per step (bounds memory: one chunk of documents at once).
CHUNK = 500
#: Fresh starts of one record when concurrent rollups overtake this one.
_PASSES = 5


def rule_for(config: ChronosConfig, collection: str) -> RetentionRule:
    """The retention rule of a collection.

    ``collection_maps.<name>.version_retention`` wins when it sets a bound; otherwise
    ``retention.ver`` applies when both ``retention.enabled`` and ``retention.ver.enabled``
    are set. Without either, the live index is not bounded (nothing is rolled up).
    """
    own = config.collection_map(collection).version_retention
    if own is not None and (own.max_versions_in_index or own.days_in_index):
        return RetentionRule(own.max_versions_in_index, own.days_in_index)
    ver = config.retention.ver
    if config.retention.enabled and ver.enabled:
        return RetentionRule(ver.max_versions, ver.max_age)
    return RetentionRule()


@dataclass(frozen=True, slots=True)
class RecordRollup:
    """What rollup did to one record."""

    rolled: int = 0
    manifests: int = 0
    manifest_bytes: int = 0
    removed: int = 0


async def live_commits(archive: Archive, t: str, item_id: str, head_ov: int) -> list[Doc]:
    """``ov`` and ``prev_at`` of the record's live published versions, in ``ov`` order."""
    query = {"t": {"$eq": t}, "id": {"$eq": item_id}, "ov": {"$lte": head_ov}}
    with mongo_errors("version read"):
        shape = {"ov": 1, "prev_at": 1, "idem": 1, "claim_us": 1, "_id": 0}
        cursor = archive.repo.versions.find(query, projection=shape)
        return await cursor.sort([("ov", 1)]).to_list(None)


async def _delete_index(archive: Archive, t: str, item_id: str, ovs: list[int]) -> int:
    """Delete index entries (their versions are in catalogued manifests)."""
    removed = 0
    for start in range(0, len(ovs), CHUNK):
        vids = [f"{t}/{item_id}/{ov}" for ov in ovs[start : start + CHUNK]]
        with mongo_errors("version index trim"):
            result = await archive.repo.versions.delete_many({"_id": {"$in": vids}})
        removed += result.deleted_count
    return removed


async def remove_covered(
    archive: Archive, t: str, item_id: str, live: list[int], head_ov: int
) -> int:
    """Delete the live index entries the record's catalog already covers (an interrupted
    rollup's second half). Never the head's version."""
    cats = await archive.catalog.for_record(t, item_id)
    ranges = [(int(c["first_ov"]), int(c["last_ov"])) for c in cats]
    covered = [ov for ov in live if ov < head_ov and any(lo <= ov <= hi for lo, hi in ranges)]
    return await _delete_index(archive, t, item_id, covered) if covered else 0


async def rollup_record(
    archive: Archive,
    t: str,
    item_id: str,
    *,
    rule: RetentionRule,
    period: Period,
    now: int,
    bound: int | None = None,
    keys_since: int | None = None,
    hook: Hook | None = None,
) -> RecordRollup:
    """Roll up one record's versions beyond ``rule`` (or below ``bound`` when given).

    Versions written with an idempotency key claimed after ``keys_since`` (epoch µs)
    stay in the index, with every version after them. When another rollup (another
    process) moves some of the same versions meanwhile, this one starts the record
    over from what is left.
    """
    total = RecordRollup()
    for _ in range(_PASSES):
        try:
            done = await _rollup_pass(
                archive, t, item_id, rule, period, now, bound, keys_since, hook, total
            )
        except _Overtaken as stop:
            total = stop.done
            continue
        return done
    raise StorageError(
        f"{archive.db}.{archive.collection} {t}/{item_id}: other rollups keep changing "
        f"this record (gave up after {_PASSES} passes; run rollup again)"
    )


class _Overtaken(Exception):
    """Another rollup moved versions this pass was about to move (``done`` so far)."""

    def __init__(self, done: RecordRollup) -> None:
        self.done = done


async def _rollup_pass(
    archive: Archive,
    t: str,
    item_id: str,
    rule: RetentionRule,
    period: Period,
    now: int,
    bound: int | None,
    keys_since: int | None,
    hook: Hook | None,
    before: RecordRollup,
) -> RecordRollup:
    hid = f"{t}/{item_id}"
    head = await archive.repo.find_head(hid, with_inline=False)
    if head is None:
        return before
    head_ov = int(head["ov"])
    light = await live_commits(archive, t, item_id, head_ov)
    if not light:
        return before
    prev_at = {int(d["ov"]): int(d["prev_at"]) for d in light}
    live = sorted(prev_at)
    removed = await remove_covered(archive, t, item_id, live, head_ov)
    if removed:
        light = await live_commits(archive, t, item_id, head_ov)
        prev_at = {int(d["ov"]): int(d["prev_at"]) for d in light}
        live = sorted(prev_at)
    floor = live[0]
    commits = [(ov, prev_at[ov + 1]) for ov in live if ov < head_ov and ov + 1 in prev_at]
    if bound is None:
        bound = rollup_bound(head_ov, commits, rule, now, floor=floor)
    bound = min(bound, head_ov)
    if keys_since is not None:
        # A version written with an idempotency key stays findable by it (a retry of a
        # write whose answer was lost looks for it in the index) until the key expires.
        pinned = [
            int(d["ov"])
            for d in light
            if d.get("idem") is not None and int(d.get("claim_us") or 0) > keys_since
        ]
        bound = min([bound, *pinned])
    rolled, manifests, size = before.rolled, before.manifests, before.manifest_bytes
    removed += before.removed
    for low in range(floor, bound, CHUNK):
        high = min(low + CHUNK, bound)
        query = {"t": {"$eq": t}, "id": {"$eq": item_id}, "ov": {"$gte": low, "$lt": high}}
        with mongo_errors("version read"):
            docs = await archive.repo.versions.find(query).sort([("ov", 1)]).to_list(None)
        ovs = [int(d["ov"]) for d in docs]
        if ovs != list(range(low, high)) or any(ov + 1 not in prev_at for ov in ovs):
            missing = min(set(range(low, high)) - set(ovs), default=low)
            if await archive.catalog.covering_ov(t, item_id, missing) is not None:
                raise _Overtaken(RecordRollup(rolled, manifests, size, removed))
            raise IntegrityError(
                f"{archive.db}.{archive.collection} {hid}: the version index has a gap in "
                f"ov {low}..{high - 1}; run admin.verify (nothing was rolled up from here)"
            )
        entries = [Entry(ov, prev_at[ov + 1], doc) for ov, doc in zip(ovs, docs, strict=True)]
        for name, bucket in groupby(entries, key=lambda e: period_of(e.at, period)):
            switch = await archive.merge(t, item_id, name, list(bucket))
            manifests += int(switch.written)
            size += switch.bytes_written
        if hook is not None:
            await hook("manifested", hid)
        trimmed = await _delete_index(archive, t, item_id, ovs)
        removed += trimmed
        rolled += trimmed  # moved by this run (a concurrent run may have deleted some)
    return RecordRollup(rolled, manifests, size, removed)


def _may_need_rollup(head: Doc, rule: RetentionRule, now: int) -> bool:
    """Whether a record can hold versions beyond the rule (cheap, from its head)."""
    if rule.max_versions is not None and int(head["ov"]) + 1 > rule.max_versions:
        return True
    if rule.max_age_days is not None:
        created = int(head.get("created_us") or 0)
        return int(head["ov"]) > 0 and created < now - rule.max_age_days * 86_400_000_000
    return False


async def call_progress(progress: LifecycleProgress | None, done: int, total: int) -> None:
    """Call the caller's ``progress(done, total)`` (awaiting it when it is a coroutine)."""
    if progress is None:
        return
    maybe = progress(done, total)
    if inspect.isawaitable(maybe):
        await maybe


async def rollup_collection(
    archive: Archive,
    *,
    rule: RetentionRule,
    period: Period,
    keys_ttl_us: int,
    progress: LifecycleProgress | None = None,
    concurrency: int = 4,
    hook: Hook | None = None,
) -> RollupReport:
    """Roll up every record of the collection (every tenant) beyond ``rule``.

    ``keys_ttl_us``: how long idempotency keys live (their versions stay in the index).
    If ``progress`` raises, no further record is started and the exception propagates
    once the records in flight are done (a later run picks up where this one stopped).
    """
    if not rule.bounded:
        return RollupReport(collections=1)
    await archive.catalog.ensure_indexes()
    now = now_us()
    with mongo_errors("head scan"):
        total = await archive.repo.heads.count_documents({})
        heads = await archive.repo.heads.find(
            {}, projection={"t": 1, "id": 1, "ov": 1, "created_us": 1}
        ).to_list(None)
    gate = asyncio.Semaphore(concurrency)
    counts = {"records": 0, "rolled_records": 0, "rolled": 0, "manifests": 0, "bytes": 0}
    counts["removed"] = 0
    failed: list[tuple[str, str]] = []
    done = 0

    stopped: list[BaseException] = []

    async def one(head: Doc) -> None:
        nonlocal done
        async with gate:
            if stopped:
                return
            try:
                if _may_need_rollup(head, rule, now):
                    out = await rollup_record(
                        archive,
                        head["t"],
                        head["id"],
                        rule=rule,
                        period=period,
                        now=now,
                        keys_since=now - keys_ttl_us,
                        hook=hook,
                    )
                    counts["rolled_records"] += int(out.rolled > 0)
                    counts["rolled"] += out.rolled
                    counts["manifests"] += out.manifests
                    counts["bytes"] += out.manifest_bytes
                    counts["removed"] += out.removed
            except ChronosError as exc:
                where = f"{archive.db}.{archive.collection} {head['t']}/{head['id']}"
                failed.append((where, f"{type(exc).__name__}: {exc}"))
            counts["records"] += 1
            done += 1
            try:
                await call_progress(progress, done, max(total, len(heads)))
            except Exception as exc:  # the caller's callback: stop cleanly, then raise it
                stopped.append(exc)

    async with asyncio.TaskGroup() as group:
        for head in heads:
            group.create_task(one(head))
    if stopped:
        raise stopped[0]
    return RollupReport(
        collections=1,
        records_examined=counts["records"],
        records_rolled=counts["rolled_records"],
        versions_rolled=counts["rolled"],
        manifests_written=counts["manifests"],
        manifest_bytes=counts["bytes"],
        index_entries_removed=counts["removed"],
        failed=tuple(sorted(failed)),
    )
