"""Checking a store against the invariants: every violation, with counts.

For each collection (every ``<name>_head`` collection of a database) the heads are read
once, the versions streamed in ``(tenant, id, ov)`` order, and the payload store listed
under each tenant's collection prefix. Per record:

- ``ov_gap``: published versions are not exactly ``0..head.ov`` (or a claim skips ahead)
- ``unpublished_claim``: version ``head.ov + 1`` exists, older than a lease: its writer
  died between claim and publication (``repair``/``reconcile`` roll it forward)
- ``head_mismatch``: the head does not mirror its version (key, sha256, cv, deleted)
- ``cv_not_increasing`` / ``at_not_increasing``: along ``ov``
- ``missing_payload`` / ``checksum_mismatch``: a version's payload is gone, or its bytes
  (or inline copy) do not hash to the recorded sha256
- ``head_without_versions`` / ``versions_without_head``
- ``orphan_payload``: a stored object no version refers to, older than the grace period
  (younger ones are counted as in flight: a write may be about to claim them)

It only reads, so it is safe to run while the application writes; a write in flight
may show up as in-flight counts, never as a violation.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any, Literal

from chronos_async._codec import sha256_hex
from chronos_async._errors import StorageError
from chronos_async._keys import NO_TENANT, collection_prefix
from chronos_async._scope import now_us
from chronos_async.meta import RecordRepo, mongo_errors
from chronos_async.storage import BlobMissingError, BlobStore

__all__ = ["CollectionScan", "Problem", "ProblemKind", "VerifyReport", "scan_collection"]

Doc = dict[str, Any]
ProblemKind = Literal[
    "ov_gap",
    "unpublished_claim",
    "head_mismatch",
    "cv_not_increasing",
    "at_not_increasing",
    "missing_payload",
    "checksum_mismatch",
    "head_without_versions",
    "versions_without_head",
    "orphan_payload",
]
#: ``progress(collection, records_checked)``
VerifyProgress = Callable[[str, int], None]
_MIRRORED = ("key", "sha256", "cv", "deleted", "at")


@dataclass(frozen=True, slots=True)
class Problem:
    """One invariant violation."""

    kind: ProblemKind
    db: str
    collection: str
    tenant: str | None
    id: str | None
    ov: int | None
    detail: str

    def __str__(self) -> str:
        tenant = f" tenant={self.tenant}" if self.tenant else ""
        where = f"{self.db}.{self.collection}{tenant} id={self.id} ov={self.ov}"
        return f"{self.kind}: {where}: {self.detail}"


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """All problems found, and how much was checked (``counts``)."""

    problems: tuple[Problem, ...]
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when no invariant is violated."""
        return not self.problems


@dataclass(slots=True)
class CollectionScan:
    """What a scan of one collection found, with what reconcile needs to act on it."""

    problems: list[Problem] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    #: (tenant, id, head_ov) of claims old enough to roll forward
    stuck_claims: list[tuple[str, str, int]] = field(default_factory=list)
    #: (tenant, id) of ``ov=0`` claims whose creator died before inserting the head
    orphan_creates: list[tuple[str, str]] = field(default_factory=list)
    #: payload keys nobody refers to, older than the grace period
    orphan_keys: list[str] = field(default_factory=list)

    def add(self, counter: str, n: int = 1) -> None:
        self.counts[counter] = self.counts.get(counter, 0) + n


async def _versions_by_record(repo: RecordRepo) -> AsyncIterator[tuple[tuple[str, str], list[Doc]]]:
    """Every record's versions, grouped, in (tenant, id, ov) order."""
    with mongo_errors("version scan"):
        cursor = repo.versions.find({}, projection={"token": 0}).sort(
            [("t", 1), ("id", 1), ("ov", 1)]
        )
    group: list[Doc] = []
    key: tuple[str, str] | None = None
    while True:
        with mongo_errors("version scan"):
            try:
                doc = await anext(cursor)
            except StopAsyncIteration:
                break
        this = (doc["t"], doc["id"])
        if key is not None and this != key:
            yield key, group
            group = []
        key = this
        group.append(doc)
    if key is not None:
        yield key, group


async def scan_collection(
    repo: RecordRepo,
    store: BlobStore,
    *,
    lease_ms: int,
    grace_seconds: float,
    check_payloads: bool,
    progress: VerifyProgress | None = None,
) -> CollectionScan:
    """Check one collection of one database (every tenant)."""
    db, name = repo.db.name, repo.name
    scan = CollectionScan()
    now = now_us()
    stale_claim_us = now - lease_ms * 1000

    def problem(kind: ProblemKind, t: str, item_id: str | None, ov: int | None, why: str) -> None:
        tenant = None if t == NO_TENANT else t
        scan.problems.append(Problem(kind, db, name, tenant, item_id, ov, why))

    with mongo_errors("head scan"):
        heads = {
            (h["t"], h["id"]): h
            async for h in repo.heads.find({}, projection={"lease_token": 0, "lease_owner": 0})
        }
    scan.add("heads", len(heads))
    referenced: set[str] = set()
    to_hash: dict[str, tuple[str, str, str, int]] = {}
    tenants = {t for t, _ in heads} | {NO_TENANT}
    seen_records: set[tuple[str, str]] = set()

    async for (t, item_id), versions in _versions_by_record(repo):
        tenants.add(t)
        seen_records.add((t, item_id))
        scan.add("versions", len(versions))
        for v in versions:
            referenced.add(v["key"])
        head = heads.get((t, item_id))
        if head is None:
            if [int(v["ov"]) for v in versions] == [0] and int(versions[0]["at"]) < stale_claim_us:
                scan.orphan_creates.append((t, item_id))
                problem("versions_without_head", t, item_id, 0, "creation claimed, never published")
            elif int(versions[0]["at"]) < stale_claim_us:
                problem("versions_without_head", t, item_id, None, f"{len(versions)} version(s)")
            else:
                scan.add("in_flight_creates")
            continue
        head_ov = int(head["ov"])
        published = [v for v in versions if int(v["ov"]) <= head_ov]
        ovs = [int(v["ov"]) for v in published]
        if ovs != list(range(head_ov + 1)):
            missing = sorted(set(range(head_ov + 1)) - set(ovs))
            problem("ov_gap", t, item_id, head_ov, f"missing ov {missing[:10]}")
        for v in versions:
            ov = int(v["ov"])
            if ov == head_ov + 1:
                if int(v["at"]) < stale_claim_us and int(head.get("lease_exp", 0)) < now:
                    scan.stuck_claims.append((t, item_id, head_ov))
                    problem("unpublished_claim", t, item_id, ov, "claimed, not published")
                else:
                    scan.add("in_flight_claims")
            elif ov > head_ov + 1:
                problem("ov_gap", t, item_id, ov, f"claim beyond head ov={head_ov}")
        current = published[-1] if published and int(published[-1]["ov"]) == head_ov else None
        if current is not None:
            wrong = [f for f in _MIRRORED if current.get(f) != head.get(f)]
            if wrong:
                problem(
                    "head_mismatch", t, item_id, head_ov, f"differs from its version in {wrong}"
                )
        for before, after in pairwise(published):
            if int(after["cv"]) <= int(before["cv"]):
                problem("cv_not_increasing", t, item_id, int(after["ov"]), "cv did not increase")
            if int(after["at"]) <= int(before["at"]):
                problem(
                    "at_not_increasing",
                    t,
                    item_id,
                    int(after["ov"]),
                    "commit time did not increase",
                )
        for v in [*published, head]:
            inline = v.get("inline")
            if inline is not None and sha256_hex(str(inline).encode()) != v["sha256"]:
                problem(
                    "checksum_mismatch",
                    t,
                    item_id,
                    int(v["ov"]),
                    "inline copy does not match sha256",
                )
            to_hash.setdefault(v["key"], (t, item_id, v["sha256"], int(v["ov"])))
        if progress is not None:
            progress(name, len(seen_records))

    for (t, item_id), head in heads.items():
        if (t, item_id) not in seen_records:
            problem("head_without_versions", t, item_id, int(head["ov"]), "no version documents")
            referenced.add(head["key"])
            to_hash.setdefault(head["key"], (t, item_id, head["sha256"], int(head["ov"])))

    stored = await _list_payloads(store, db, name, tenants, scan)
    grace = datetime.now(UTC) - timedelta(seconds=grace_seconds)
    for key, modified in stored.items():
        if key in referenced:
            continue
        if modified < grace:
            scan.orphan_keys.append(key)
            problem("orphan_payload", _tenant_of(key), None, None, f"unreferenced object {key}")
        else:
            scan.add("in_flight_payloads")
    await _check_payloads(store, to_hash, stored, check_payloads, problem, scan)
    return scan


def _tenant_of(key: str) -> str:
    return key.split("/", 1)[0]


async def _list_payloads(
    store: BlobStore, db: str, name: str, tenants: set[str], scan: CollectionScan
) -> dict[str, datetime]:
    stored: dict[str, datetime] = {}
    for t in sorted(tenants):
        prefix = collection_prefix(None if t == NO_TENANT else t, db, name)
        async for info in store.list(prefix):
            stored[info.key] = info.modified_at
    scan.add("payloads", len(stored))
    return stored


async def _check_payloads(
    store: BlobStore,
    to_hash: dict[str, tuple[str, str, str, int]],
    stored: dict[str, datetime],
    check_payloads: bool,
    problem: Callable[[ProblemKind, str, str | None, int | None, str], None],
    scan: CollectionScan,
) -> None:
    """Missing payloads always; with ``check_payloads`` also every object's sha256."""
    gate = asyncio.Semaphore(16)

    async def one(key: str, t: str, item_id: str, sha: str, ov: int) -> None:
        if key not in stored:
            problem("missing_payload", t, item_id, ov, f"object {key} is not in the store")
            return
        if not check_payloads:
            return
        async with gate:
            try:
                body = await store.get(key)
            except BlobMissingError:
                problem("missing_payload", t, item_id, ov, f"object {key} vanished")
                return
            except StorageError as exc:
                problem("missing_payload", t, item_id, ov, f"object {key} unreadable: {exc}")
                return
        scan.add("payloads_hashed")
        if sha256_hex(body) != sha:
            problem("checksum_mismatch", t, item_id, ov, f"object {key} does not match sha256")

    await asyncio.gather(*(one(key, *facts) for key, facts in to_hash.items()))
