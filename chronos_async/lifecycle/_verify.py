"""What verify needs from rollup: each record's rolled-up versions, read from their
manifests (each checked against its catalogued sha256), to be checked with the live
ones as one history (``ov`` 0..head without gaps, commit times and ``cv`` increasing,
every payload present and intact)."""

from __future__ import annotations

from typing import Any

from chronos_async._asof import finalized
from chronos_async._errors import IntegrityError, StorageError
from chronos_async._verify_report import CollectionScan
from chronos_async.lifecycle._archive import Archive
from chronos_async.meta import RecordRepo
from chronos_async.storage import BlobStore

__all__ = ["catalogued_records", "with_rolled"]

Doc = dict[str, Any]


async def catalogued_records(
    repo: RecordRepo, store: BlobStore
) -> dict[tuple[str, str], list[Doc]]:
    """The catalog documents of the collection, by record (without their span lists)."""
    archive = Archive.of(repo, store)
    found: dict[tuple[str, str], list[Doc]] = {}
    async for cat in archive.catalog.scan(projection={"spans": 0}):
        found.setdefault((str(cat["t"]), str(cat["id"])), []).append(cat)
    return found


async def with_rolled(
    repo: RecordRepo, store: BlobStore, scan: CollectionScan, cats: list[Doc], live: list[Doc]
) -> list[Doc]:
    """``live`` with the rolled-up versions of the record added, in ``ov`` order.

    A manifest that is missing or does not match its sha256 is a ``rollup_manifest``
    problem (its versions are then missing: ``ov_gap`` says which). A version in both
    (a rollup between its two halves) counts once, from the index.
    """
    archive = Archive.of(repo, store)
    have = {int(v["ov"]) for v in live}
    rolled: list[Doc] = []
    for cat in cats:
        scan.add("manifests")
        t, item_id = str(cat["t"]), str(cat["id"])
        try:
            loaded = await archive.entries(cat, fresh=True)
        except (IntegrityError, StorageError) as exc:
            scan.problem("rollup_manifest", t, item_id, int(cat["first_ov"]), str(exc))
            continue
        if loaded is None:
            continue
        for entry in loaded[1]:
            if entry.ov not in have:
                have.add(entry.ov)
                rolled.append(finalized(entry.doc, entry.at))
    scan.add("rolled_up_versions", len(rolled))
    return sorted([*rolled, *live], key=lambda v: int(v["ov"]))
