"""Checking a store against the invariants: every violation, with counts.

For each collection (every ``<name>_head`` collection of a database, on any backend)
each backend's heads are read once and its versions streamed in ``(tenant, id, ov)``
order; then each distinct payload store is listed once under the collection prefix of
every tenant seen. Per record:

- ``ov_gap``: published versions are not exactly ``0..head.ov`` (or a claim skips ahead)
- ``unpublished_claim``: version ``head.ov + 1`` exists, too old for its writer to
  publish it: the writer died between claim and publication (``repair``/``reconcile``
  roll it forward)
- ``head_mismatch``: the head does not mirror its version (key, sha256, cv, deleted), or
  its commit time is not after the version's claim
- ``cv_not_increasing`` / ``at_not_increasing``: along ``ov`` (commit times are the next
  version's ``prev_at``, the head's ``at`` for the current one; see :mod:`._asof`)
- ``missing_payload`` / ``checksum_mismatch``: a version's payload is gone, or its bytes
  (or inline copy) do not hash to the recorded sha256
- ``head_without_versions`` / ``versions_without_head``
- ``orphan_payload``: a stored object no version refers to, older than the grace period
  (younger ones are counted as in flight: a write may be about to claim them)
- ``missing_content`` / ``checksum_mismatch`` / ``orphan_content``: the same for the
  content objects of externalized ``base64_props`` (see :mod:`._content_verify`)
- ``rollup_manifest``: a manifest of rolled-up versions (:mod:`.lifecycle`) is missing
  or does not match its sha256; the versions of the readable ones are checked with the
  live versions as one history

Backends may share a payload store (every backend of a local-folder setup does; two S3
connections may name one bucket and prefix). A store's objects are therefore judged
against the references of every backend whose store has the same
:attr:`~chronos_async.storage.BlobStore.identity`, and each candidate orphan is looked
up once more, by the version and head ids its key names, on every backend (a store can
also be reached under two identities). Only then is it an orphan (invariant 11).

It only reads, so it is safe to run while the application writes; a write in flight
may show up as in-flight counts, never as a violation.
"""

from __future__ import annotations

from collections.abc import Sequence

from chronos_async._content_verify import scan_content
from chronos_async._verify_records import scan_records
from chronos_async._verify_report import (
    BackendScan,
    CollectionScan,
    Problem,
    ProblemKind,
    ReferenceCheck,
    VerifyProgress,
    VerifyReport,
)
from chronos_async._verify_store import (
    check_stored,
    confirm_orphans,
    list_payloads,
    pack_uses,
    unreferenced,
)
from chronos_async.meta import RecordRepo
from chronos_async.storage import BlobStore

__all__ = [
    "BackendScan",
    "CollectionScan",
    "Problem",
    "ProblemKind",
    "ReferenceCheck",
    "VerifyProgress",
    "VerifyReport",
    "scan_collection",
]


async def scan_collection(
    db: str,
    name: str,
    targets: Sequence[tuple[RecordRepo, BlobStore]],
    *,
    settle_us: tuple[int, int],
    grace_seconds: float,
    check_payloads: bool,
    still_referenced: ReferenceCheck | None = None,
    progress: VerifyProgress | None = None,
) -> CollectionScan:
    """Check collection ``db.name`` (every tenant) on every backend of ``targets``.

    ``targets`` pairs each backend's repository of the collection with its payload store.
    ``settle_us`` is how old an update's and a create's claim must be before it counts as
    stuck rather than in flight (:func:`chronos_async._rollforward.settle_age_us`).
    Records are checked backend by backend; then each distinct store (by identity) is
    listed once, and an object is an orphan only when no backend sharing that store refers
    to it and, when ``still_referenced`` is given, no backend at all does.
    """
    scan = CollectionScan(db, name)
    for repo, store in targets:
        scan.backends.append(await scan_records(repo, store, scan, settle_us, progress))
    shared: dict[str, list[BackendScan]] = {}
    for part in scan.backends:
        shared.setdefault(part.store.identity, []).append(part)
    for parts in shared.values():
        stored = await list_payloads(parts, db, name, scan)
        candidates = unreferenced(parts, stored, grace_seconds, scan)
        orphans = await confirm_orphans(parts[0].store, candidates, still_referenced, scan)
        scan.orphans.append((parts[0].store, orphans))
        await pack_uses(parts, stored, scan)
        for part in parts:
            await check_stored(part.store, part.to_hash, stored, check_payloads, scan)
        await scan_content(
            parts,
            db,
            name,
            scan,
            grace_seconds=grace_seconds,
            check_payloads=check_payloads,
            still_referenced=still_referenced,
        )
    return scan
