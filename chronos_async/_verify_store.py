"""The payload-store side of verify: listing, orphans, missing and corrupt payloads."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from chronos_async._codec import sha256_hex
from chronos_async._errors import StorageError
from chronos_async._keys import NO_TENANT, collection_prefix, parse_payload_key
from chronos_async._verify_report import BackendScan, CollectionScan, ReferenceCheck
from chronos_async.storage import BlobMissingError, BlobStore

__all__ = ["check_stored", "confirm_orphans", "list_payloads", "unreferenced"]


async def list_payloads(
    parts: list[BackendScan], db: str, name: str, scan: CollectionScan
) -> dict[str, datetime]:
    """List one store under the prefix of every tenant any of ``parts`` knows."""
    tenants = set[str]().union(*(part.tenants for part in parts))
    stored: dict[str, datetime] = {}
    for t in sorted(tenants):
        prefix = collection_prefix(None if t == NO_TENANT else t, db, name)
        async for info in parts[0].store.list(prefix):
            stored[info.key] = info.modified_at
    scan.add("payloads", len(stored))
    return stored


def unreferenced(
    parts: list[BackendScan],
    stored: dict[str, datetime],
    grace_seconds: float,
    scan: CollectionScan,
) -> list[str]:
    """Stored keys no backend of ``parts`` refers to, older than ``grace_seconds``.

    Objects whose key is not a payload key are reported but never returned: only a
    payload key names the version and head that could refer to it (see
    :func:`chronos_async._reconcile.referenced_keys`), so nothing can prove them unused.
    """
    referenced = set[str]().union(*(part.referenced for part in parts))
    now = datetime.now(UTC)
    candidates: list[str] = []
    for key, modified in stored.items():
        if key in referenced:
            continue
        if (now - modified).total_seconds() <= grace_seconds:
            scan.add("in_flight_payloads")
        elif parse_payload_key(key) is None:
            why = f"unrecognized object {key} (not a payload key: reconcile leaves it)"
            scan.problem("orphan_payload", _tenant_of(key), None, None, why)
        else:
            candidates.append(key)
    return candidates


async def confirm_orphans(
    candidates: list[str], still_referenced: ReferenceCheck | None, scan: CollectionScan
) -> list[str]:
    """The candidates no backend refers to (each checked again by its own ids)."""
    kept = await still_referenced(candidates) if still_referenced and candidates else set()
    orphans = [key for key in candidates if key not in kept]
    if kept:
        scan.add("payloads_referenced_elsewhere", len(candidates) - len(orphans))
    for key in orphans:
        scan.problem("orphan_payload", _tenant_of(key), None, None, f"unreferenced object {key}")
    return orphans


def _tenant_of(key: str) -> str:
    return key.split("/", 1)[0]


async def check_stored(
    store: BlobStore,
    to_hash: dict[str, tuple[str, str, str, int]],
    stored: dict[str, datetime],
    check_payloads: bool,
    scan: CollectionScan,
) -> None:
    """Missing payloads always; with ``check_payloads`` also every object's sha256."""
    gate = asyncio.Semaphore(16)
    problem = scan.problem

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
