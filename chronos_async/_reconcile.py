"""Repairing a store: roll stuck claims forward, publish orphaned creations, and remove
orphan payloads older than a grace period.

Safe to run while the application writes: a claim is rolled forward only when it is
older than a lease and the record's lease is free (its writer is gone), with the same
compare-and-swap a writer uses, so it can never overwrite newer work. Orphan payloads
are removed only after ``grace_seconds`` (default an hour): a write in flight stores its
payload before it claims its version, and no write takes that long.
"""

from __future__ import annotations

from dataclasses import dataclass

from chronos_async._keys import NO_TENANT, head_id, version_id
from chronos_async._publish import head_from_version
from chronos_async._verify import CollectionScan
from chronos_async.meta import DuplicateKeyError, RecordRepo
from chronos_async.storage import BlobStore

__all__ = ["ReconcileReport", "fix_collection"]

_DELETE_BATCH = 500


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    """What reconcile (or repair) changed."""

    rolled_forward: int = 0
    adopted_creates: int = 0
    orphans_removed: int = 0

    def __add__(self, other: ReconcileReport) -> ReconcileReport:
        return ReconcileReport(
            self.rolled_forward + other.rolled_forward,
            self.adopted_creates + other.adopted_creates,
            self.orphans_removed + other.orphans_removed,
        )


def _tenant(t: str) -> str | None:
    return None if t == NO_TENANT else t


async def fix_collection(
    repo: RecordRepo, store: BlobStore, scan: CollectionScan, *, remove_orphans: bool
) -> ReconcileReport:
    """Act on one collection's scan: publish stuck versions, optionally drop orphans."""
    rolled = adopted = removed = 0
    for t, item_id, head_ov in scan.stuck_claims:
        tenant = _tenant(t)
        pending = await repo.find_version(version_id(tenant, item_id, head_ov + 1))
        if pending is None:
            continue
        hid = head_id(tenant, item_id)
        if await repo.move_head(hid, head_ov, head_from_version(pending, hid)):
            rolled += 1
    for t, item_id in scan.orphan_creates:
        tenant = _tenant(t)
        first = await repo.find_version(version_id(tenant, item_id, 0))
        if first is None:
            continue
        try:
            await repo.insert_head(head_from_version(first, head_id(tenant, item_id)))
            adopted += 1
        except DuplicateKeyError:
            pass
    if remove_orphans and scan.orphan_keys:
        for start in range(0, len(scan.orphan_keys), _DELETE_BATCH):
            batch = scan.orphan_keys[start : start + _DELETE_BATCH]
            await store.delete(batch)
            removed += len(batch)
    return ReconcileReport(rolled, adopted, removed)
