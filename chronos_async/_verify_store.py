"""The payload-store side of verify: listing, orphans, missing and corrupt payloads."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from chronos_async._codec import sha256_hex
from chronos_async._errors import StorageError
from chronos_async._keys import NO_TENANT, collection_prefix, parse_payload_key
from chronos_async._verify_report import (
    BackendScan,
    CollectionScan,
    PackUse,
    ReferenceCheck,
    Span,
)
from chronos_async.storage import BlobInfo, BlobMissingError, BlobStore
from chronos_async.storage._packs import TRAILER_LEN_BYTES, is_pack_key

__all__ = ["check_stored", "confirm_orphans", "list_payloads", "pack_uses", "unreferenced"]


async def list_payloads(
    parts: list[BackendScan], db: str, name: str, scan: CollectionScan
) -> dict[str, BlobInfo]:
    """List one store under the prefix of every tenant any of ``parts`` knows."""
    tenants = set[str]().union(*(part.tenants for part in parts))
    stored: dict[str, BlobInfo] = {}
    for t in sorted(tenants):
        prefix = collection_prefix(None if t == NO_TENANT else t, db, name)
        async for info in parts[0].store.list(prefix):
            stored[info.key] = info
    packs = [info for key, info in stored.items() if is_pack_key(key)]
    scan.add("payloads", len(stored) - len(packs))
    if packs:
        scan.add("packs", len(packs))
        scan.add("pack_bytes", sum(info.size for info in packs))
    return stored


def unreferenced(
    parts: list[BackendScan],
    stored: dict[str, BlobInfo],
    grace_seconds: float,
    scan: CollectionScan,
) -> list[str]:
    """Stored keys no backend of ``parts`` refers to, older than ``grace_seconds``.

    Objects whose key is neither a payload key nor a pack key are reported but never
    returned: only those keys name the versions that could refer to them (see
    :func:`chronos_async._reconcile.referenced_keys`), so nothing can prove them unused.
    """
    referenced = set[str]().union(*(part.referenced for part in parts))
    now = datetime.now(UTC)
    candidates: list[str] = []
    for key, info in stored.items():
        if key in referenced:
            continue
        if (now - info.modified_at).total_seconds() <= grace_seconds:
            scan.add("in_flight_payloads")
        elif parse_payload_key(key) is None and not is_pack_key(key):
            why = f"unrecognized object {key} (not a payload key: reconcile leaves it)"
            scan.problem("orphan_payload", _tenant_of(key), None, None, why)
        else:
            candidates.append(key)
    return candidates


async def confirm_orphans(
    store: BlobStore,
    candidates: list[str],
    still_referenced: ReferenceCheck | None,
    scan: CollectionScan,
) -> list[str]:
    """The candidates no backend refers to (each checked again by its own ids)."""
    if still_referenced is not None and candidates:
        kept = await still_referenced(store, candidates)
    else:
        kept = set()
    orphans = [key for key in candidates if key not in kept]
    if kept:
        scan.add("payloads_referenced_elsewhere", len(candidates) - len(orphans))
    for key in orphans:
        # A payload key names its record and version (a pack key names neither).
        parsed = parse_payload_key(key)
        item_id, ov = (parsed[3], parsed[4]) if parsed is not None else (None, None)
        scan.problem("orphan_payload", _tenant_of(key), item_id, ov, f"unreferenced object {key}")
    return orphans


async def pack_uses(
    parts: list[BackendScan], stored: dict[str, BlobInfo], scan: CollectionScan
) -> None:
    """Record how much of each referenced pack is live (``scan.packs``), and count the
    payload bytes no version uses any more (``pack_dead_bytes``: what compaction
    reclaims; the trailers, read for their length, are not counted)."""
    live: dict[str, set[tuple[int, int]]] = {}
    for part in parts:
        for key, offset, length in part.to_hash:
            if offset is not None and length is not None:
                live.setdefault(key, set()).add((offset, length))
    store = parts[0].store
    now = datetime.now(UTC)
    for key, spans in sorted(live.items()):
        info = stored.get(key)
        if info is None:
            continue  # reported as missing by check_stored
        used = sum(length for _, length in spans)
        age = (now - info.modified_at).total_seconds()
        scan.packs.append(PackUse(store, key, info.size, used, age))
        overhead = TRAILER_LEN_BYTES
        if info.size >= TRAILER_LEN_BYTES:
            try:
                tail = await store.get_range(
                    key, offset=info.size - TRAILER_LEN_BYTES, length=TRAILER_LEN_BYTES
                )
                overhead += int.from_bytes(tail, "big")
            except StorageError:
                pass  # check_stored reports what cannot be read
        scan.add("pack_dead_bytes", max(info.size - used - overhead, 0))


def _tenant_of(key: str) -> str:
    return key.split("/", 1)[0]


async def check_stored(
    store: BlobStore,
    to_hash: dict[Span, tuple[str, str, str, int]],
    stored: dict[str, BlobInfo],
    check_payloads: bool,
    scan: CollectionScan,
) -> None:
    """Missing payloads always; with ``check_payloads`` also every payload's sha256 (a
    pack member's over its own range)."""
    gate = asyncio.Semaphore(16)
    problem = scan.problem

    async def one(span: Span, t: str, item_id: str, sha: str, ov: int) -> None:
        key, offset, length = span
        if key not in stored:
            problem("missing_payload", t, item_id, ov, f"object {key} is not in the store")
            return
        if offset is not None and length is not None and offset + length > stored[key].size:
            problem("missing_payload", t, item_id, ov, f"{key} ends before {offset + length}")
            return
        if not check_payloads:
            return
        async with gate:
            try:
                if offset is None or length is None:
                    body = await store.get(key)
                else:
                    body = await store.get_range(key, offset=offset, length=length)
            except BlobMissingError:
                problem("missing_payload", t, item_id, ov, f"object {key} vanished")
                return
            except StorageError as exc:
                problem("missing_payload", t, item_id, ov, f"object {key} unreadable: {exc}")
                return
        scan.add("payloads_hashed")
        if sha256_hex(body) != sha:
            problem("checksum_mismatch", t, item_id, ov, f"object {key} does not match sha256")

    await asyncio.gather(*(one(span, *facts) for span, facts in to_hash.items()))
