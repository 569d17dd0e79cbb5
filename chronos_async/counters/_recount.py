"""Totals computed from the truth: the version index and the heads of one collection.

The same :func:`~._rules.contribution` the write path stamps on each version is replayed
over every published version of every record (rolled-up ones read back from their
manifests), in ``ov`` order, under the rules in force
now; gauges come out of the replay as the state of each record's last published
version. Versions above their record's head (unpublished claims) count nothing. Events
of versions claimed before the totals' last reset are left out (gauges never reset).

A recount holds one small entry per record in memory (the head's ``ov``), reads the
version index once in ``(tenant, id, ov)`` order, and reads a payload only for a rule
with ``scope="payload"`` whose version is not stored inline.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from chronos_async._payloads import read_payload
from chronos_async.counters._rules import Change, RuleSet, contribution
from chronos_async.lifecycle._archive import Archive
from chronos_async.meta import RecordRepo, UniqueFact, mongo_errors
from chronos_async.storage import BlobStore

if TYPE_CHECKING:
    from chronos_async._scope import Scope

__all__ = ["Computed", "compute_totals", "stamp", "stored_data"]

Doc = dict[str, Any]
#: Payloads at least this large are parsed in a worker thread.
_OFFLOAD = 256 * 1024


@dataclass(slots=True)
class Computed:
    """The totals of one tenant of a collection, as the version index says they are."""

    counts: Counter[str] = field(default_factory=Counter)
    uniques: set[UniqueFact] = field(default_factory=set)
    #: The ids of the records replayed.
    items: set[str] = field(default_factory=set)
    records: int = 0
    versions: int = 0


async def stored_data(store: BlobStore, version: Doc) -> dict[str, Any] | None:
    """The payload of ``version`` as stored (its inline copy, else read from ``store``)."""
    body = version.get("inline")
    raw = body.encode() if isinstance(body, str) else await read_payload(store, version)
    return await parse_object(raw)


async def parse_object(raw: bytes) -> dict[str, Any] | None:
    """``raw`` JSON as a dict (``None`` for any other value); large bodies are parsed off
    the event loop."""
    data = orjson.loads(raw) if len(raw) < _OFFLOAD else await asyncio.to_thread(orjson.loads, raw)
    return data if isinstance(data, dict) else None


async def compute_totals(
    repo: RecordRepo,
    store: BlobStore,
    rules: RuleSet,
    *,
    resets: Mapping[str, int],
) -> dict[str, Computed]:
    """The totals of every tenant (as stored) of ``repo``'s collection, by tenant.

    ``resets`` maps a tenant to its totals' ``reset_us``.
    """
    heads: dict[tuple[str, str], int] = {}
    with mongo_errors("head scan"):
        async for head in repo.heads.find({}, projection={"t": 1, "id": 1, "ov": 1}):
            heads[(str(head["t"]), str(head["id"]))] = int(head["ov"])
    out: dict[str, Computed] = {}
    record: tuple[str, str] | None = None
    live, matched = False, frozenset[str]()
    archive = Archive.of(repo, store)
    rolled = await _rolled_up_records(archive)
    projection = None if rules.needs_payload else {"inline": 0}
    with mongo_errors("version scan"):
        cursor = repo.versions.find({}, projection=projection).sort(
            [("t", 1), ("id", 1), ("ov", 1)]
        )
        async for found in cursor:
            t, item_id = str(found["t"]), str(found["id"])
            head_ov = heads.get((t, item_id))
            if head_ov is None or int(found["ov"]) > head_ov:
                continue  # an unpublished claim (or a record being hard-deleted)
            older: list[Doc] = []
            if (t, item_id) != record:
                record, live, matched = (t, item_id), False, frozenset()
                out.setdefault(t, Computed()).records += 1
                out[t].items.add(item_id)
                if (t, item_id) in rolled:  # its older versions are in manifests
                    older = await _rolled_up_versions(archive, rolled[(t, item_id)])
            totals = out[t]
            for version in [*older, found]:
                live, matched = await _replay(store, rules, resets, totals, version, live, matched)
    return out


async def _rolled_up_records(archive: Archive) -> dict[tuple[str, str], list[Doc]]:
    """The catalog documents of every record with rolled-up versions, by record."""
    by_record: dict[tuple[str, str], list[Doc]] = {}
    with mongo_errors("rollup catalog scan"):
        async for cat in archive.catalog.docs.find({}).sort([("first_ov", 1)]):
            by_record.setdefault((str(cat["t"]), str(cat["id"])), []).append(cat)
    return by_record


async def _rolled_up_versions(archive: Archive, cats: list[Doc]) -> list[Doc]:
    """The rolled-up version documents the catalog documents ``cats`` name, in ov order."""
    docs: list[Doc] = []
    for cat in cats:
        loaded = await archive.entries(cat)
        if loaded is not None:
            docs.extend(entry.doc for entry in loaded[1])
    return sorted(docs, key=lambda d: int(d["ov"]))


async def _replay(
    store: BlobStore,
    rules: RuleSet,
    resets: Mapping[str, int],
    totals: Computed,
    version: Doc,
    live: bool,
    matched: frozenset[str],
) -> tuple[bool, frozenset[str]]:
    """Add one version's contribution to ``totals``; the record's state after it."""
    t, item_id = str(version["t"]), str(version["id"])
    deleted = bool(version.get("deleted"))
    data = None
    if rules.needs_payload and not deleted:
        data = await stored_data(store, version)
    part = contribution(
        rules,
        Change(
            op=str(version["op"]),
            deleted=deleted,
            meta=version.get("meta") or {},
            data=data,
            prev_live=live,
            prev_matched=matched,
        ),
    )
    before_reset = int(version.get("claim_us") or 0) <= resets.get(t, -1)
    for name, n in part.counts.items():
        if not before_reset or name.startswith("g_"):
            totals.counts[name] += n
    if not before_reset:
        totals.uniques.update((r, h, item_id) for r, h in part.uniques)
    totals.versions += 1
    return not deleted, frozenset(part.matched)


async def stamp(scope: Scope, version: Doc, prev_head: Doc | None, payload: Any) -> None:
    """Store the version's counter contribution on it (the write path, under the lease).

    ``payload`` is the new payload (an :class:`~chronos_async._codec.EncodedPayload`), or
    ``None`` when the version reuses a stored one (read back only when a rule needs it).
    """
    counting = scope.counting
    assert counting is not None
    data: Any = None
    if counting.rules.needs_payload and not version.get("deleted"):
        if payload is not None:
            data = await parse_object(payload.body)
        else:
            data = await stored_data(scope.store, version)
    counting.stamp(version, prev_head, data)
