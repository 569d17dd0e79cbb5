"""The record side of verify: one backend's heads and versions against the invariants."""

from __future__ import annotations

from collections.abc import AsyncIterator
from itertools import pairwise
from typing import Any

from chronos_async._codec import sha256_hex
from chronos_async._content_verify import note_content
from chronos_async._keys import NO_TENANT, copy_key
from chronos_async._scope import now_us
from chronos_async._verify_report import BackendScan, CollectionScan, Span, VerifyProgress
from chronos_async.lifecycle._verify import catalogued_records, with_rolled
from chronos_async.meta import RecordRepo, mongo_errors
from chronos_async.storage import BlobStore

__all__ = ["scan_records", "span_of"]

Doc = dict[str, Any]
#: What a head must share with the version it publishes.
_MIRRORED = ("key", "offset", "sha256", "cv", "deleted")


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


async def scan_records(
    repo: RecordRepo,
    store: BlobStore,
    scan: CollectionScan,
    settle_us: tuple[int, int],
    progress: VerifyProgress | None,
) -> BackendScan:
    """Check one backend's heads and versions of the collection.

    ``settle_us`` is ``(update, create)``: how old a claim must be to count as stuck.
    """
    part = BackendScan(repo, store)
    now = now_us()
    stale_update, stale_create = now - settle_us[0], now - settle_us[1]

    with mongo_errors("head scan"):
        heads = {
            (h["t"], h["id"]): h
            async for h in repo.heads.find({}, projection={"lease_token": 0, "lease_owner": 0})
        }
    scan.add("heads", len(heads))
    part.tenants.update(t for t, _ in heads)
    seen_records: set[tuple[str, str]] = set()
    rolled = await catalogued_records(repo, store)

    async for (t, item_id), versions in _versions_by_record(repo):
        part.tenants.add(t)
        seen_records.add((t, item_id))
        scan.add("versions", len(versions))
        if (t, item_id) in rolled:  # rolled-up versions are checked as part of the history
            versions = await with_rolled(repo, store, scan, rolled[(t, item_id)], versions)
        part.referenced.update(str(v["key"]) for v in versions)
        part.referenced.update(
            copy_key(_tenant(t), repo.db.name, repo.name, v["id"], int(v["ov"]), v["sha256"])
            for v in versions
            if v.get("offset") is not None
        )
        note_content(part, t, versions)
        head = heads.get((t, item_id))
        if head is None:
            claimed = _claim_us(versions[0])
            if [int(v["ov"]) for v in versions] == [0] and claimed < stale_create:
                part.orphan_creates.append((t, item_id))
                scan.problem(
                    "versions_without_head", t, item_id, 0, "creation claimed, never published"
                )
            elif claimed < stale_create:
                scan.problem(
                    "versions_without_head", t, item_id, None, f"{len(versions)} version(s)"
                )
            else:
                scan.add("in_flight_creates")
            continue
        _check_record(part, scan, t, item_id, head, versions, now, stale_update)
        if progress is not None:
            progress(repo.name, len(seen_records))

    for (t, item_id), head in heads.items():
        if (t, item_id) not in seen_records:
            scan.problem(
                "head_without_versions", t, item_id, int(head["ov"]), "no version documents"
            )
            part.referenced.add(head["key"])
            note_content(part, t, [head])
            part.to_hash.setdefault(span_of(head), (t, item_id, head["sha256"], int(head["ov"])))
    for t, item_id in rolled.keys() - seen_records - heads.keys():
        # A hard delete that stopped before removing the record's manifests.
        scan.problem("rollup_manifest", t, item_id, None, "manifests of a record that is gone")
    return part


def span_of(doc: Doc) -> Span:
    """Where the payload of a head or version lies."""
    offset, length = doc.get("offset"), doc.get("length")
    return (
        str(doc["key"]),
        None if offset is None else int(offset),
        None if length is None else int(length),
    )


def _tenant(t: str) -> str | None:
    return None if t == NO_TENANT else t


def _claim_us(version: Doc) -> int:
    return int(version.get("claim_us") or 0)


def _check_record(
    part: BackendScan,
    scan: CollectionScan,
    t: str,
    item_id: str,
    head: Doc,
    versions: list[Doc],
    now: int,
    stale_update: int,
) -> None:
    """The invariants of one record that has a head."""
    problem = scan.problem
    head_ov = int(head["ov"])
    published = [v for v in versions if int(v["ov"]) <= head_ov]
    ovs = [int(v["ov"]) for v in published]
    if ovs != list(range(head_ov + 1)):
        missing = sorted(set(range(head_ov + 1)) - set(ovs))
        problem("ov_gap", t, item_id, head_ov, f"missing ov {missing[:10]}")
    for v in versions:
        ov = int(v["ov"])
        if ov == head_ov + 1:
            if _claim_us(v) < stale_update and int(head.get("lease_exp", 0)) < now:
                part.stuck_claims.append((t, item_id, head_ov))
                problem("unpublished_claim", t, item_id, ov, "claimed, not published")
            else:
                scan.add("in_flight_claims")
        elif ov > head_ov + 1:
            problem("ov_gap", t, item_id, ov, f"claim beyond head ov={head_ov}")
    current = published[-1] if published and int(published[-1]["ov"]) == head_ov else None
    if current is not None:
        wrong = [f for f in _MIRRORED if current.get(f) != head.get(f)]
        if _claim_us(current) >= int(head["at"]):
            wrong.append("at")
        if wrong:
            problem("head_mismatch", t, item_id, head_ov, f"differs from its version in {wrong}")
    # A version's commit time is its successor's prev_at (the head's at for the last).
    by_ov = {int(v["ov"]): v for v in published}
    commit = {ov: int(by_ov[ov + 1]["prev_at"]) for ov in by_ov if ov + 1 in by_ov}
    if current is not None:
        commit[head_ov] = int(head["at"])
    if 0 in by_ov and int(by_ov[0].get("prev_at", -1)) != -1:
        problem("at_not_increasing", t, item_id, 0, "the first version has a predecessor time")
    for before, after in pairwise(published):
        if int(after["cv"]) <= int(before["cv"]):
            problem("cv_not_increasing", t, item_id, int(after["ov"]), "cv did not increase")
        ov_after = int(after["ov"])
        if ov_after in commit and commit[ov_after] <= int(after["prev_at"]):
            problem("at_not_increasing", t, item_id, ov_after, "commit time did not increase")
    for v in [*published, head]:
        inline = v.get("inline")
        if inline is not None and sha256_hex(str(inline).encode()) != v["sha256"]:
            problem(
                "checksum_mismatch", t, item_id, int(v["ov"]), "inline copy does not match sha256"
            )
        part.to_hash.setdefault(span_of(v), (t, item_id, v["sha256"], int(v["ov"])))
