"""Payload references held by rolled-up versions (for reconcile's last check and for
pack rewrites): a payload or pack that only a manifest refers to is in use."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from chronos_async.meta._rollup import RollupCatalog

__all__ = ["rolled_up_spans", "rolled_up_users"]

Doc = dict[str, Any]


async def rolled_up_spans(
    database: Any, collection: str, records: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], list[tuple[str, int | None, int | None]]]:
    """The payload spans ``(key, offset, length)`` the manifests of ``records``
    (``(tenant as stored, id)`` pairs) refer to, read fresh from the catalog."""
    catalog = RollupCatalog(database, collection)
    found: dict[tuple[str, str], list[tuple[str, int | None, int | None]]] = {}
    for cat in await catalog.for_records(set(records)):
        spans = found.setdefault((str(cat["t"]), str(cat["id"])), [])
        for key, offset, length in cat.get("spans") or ():
            spans.append((str(key), offset, length))
    return found


async def rolled_up_users(
    database: Any, collection: str, entries: Iterable[tuple[str, str, str]]
) -> set[str]:
    """The keys of ``entries`` (``(key, tenant as stored, id)``) that a rolled-up version
    of their record, or any live version of it (a restore or delete reuses an older
    version's payload key), refers to."""
    wanted = list(entries)
    records = {(t, item_id) for _, t, item_id in wanted}
    spans = await rolled_up_spans(database, collection, records)
    used = {(t, i, span[0]) for (t, i), found in spans.items() for span in found}
    versions = database[f"{collection}_ver"]
    keys = sorted({key for key, _, _ in wanted})
    if records and keys:
        # One query for the whole batch: the (t, id, ...) index narrows it to these records.
        query = {
            "t": {"$in": sorted({t for t, _ in records})},
            "id": {"$in": sorted({i for _, i in records})},
            "key": {"$in": keys},
        }
        async for doc in versions.find(query, projection={"t": 1, "id": 1, "key": 1}):
            used.add((str(doc["t"]), str(doc["id"]), str(doc.get("key"))))
    return {key for key, t, item_id in wanted if (t, item_id, key) in used}
