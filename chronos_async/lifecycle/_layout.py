"""Manifest layout, period bucketing and the choice of versions to roll up (pure, no I/O).

A *manifest* holds the rolled-up version documents of one record for one period
(``rollup.manifest_period``: a UTC day, ISO week or month of their commit times). It is a
gzip-compressed sequence of BSON documents: a header, then one entry per version in
``ov`` order, ``{"ov": n, "at": commit_us, "doc": <the version document, verbatim>}``.
BSON, not JSON, because a version document must come back exactly as it was stored,
whatever fields and types other subsystems put on it (datetimes, 64-bit integers,
nested documents).

Which versions leave the live index (:func:`rollup_bound`): the versions beyond the
newest ``max_versions`` and/or committed more than ``max_age`` ago, "whichever limit is
reached first". Commit times grow with ``ov``, so both selections are prefixes of the
history and so is their union: a record's rolled-up versions are always ``0 .. bound-1``
and its live ones ``bound .. head``. The head's version is never rolled up.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import bson

from chronos_async._errors import IntegrityError
from chronos_async._keys import item_prefix

__all__ = [
    "FORMAT",
    "Entry",
    "Period",
    "RetentionRule",
    "content_of",
    "decode_manifest",
    "encode_manifest",
    "manifest_key",
    "manifest_prefix",
    "merge_entries",
    "period_of",
    "rollup_bound",
    "spans_of",
]

Doc = dict[str, Any]
Period = Literal["daily", "weekly", "monthly"]
#: The header's ``format``: readers refuse anything else.
FORMAT = "chronos-rollup/1"
_DAY_US = 86_400 * 1_000_000


@dataclass(frozen=True, slots=True)
class Entry:
    """One rolled-up version: its ``ov``, its commit time (epoch µs), its document."""

    ov: int
    at: int
    doc: Doc


@dataclass(frozen=True, slots=True)
class RetentionRule:
    """How much of a record's history stays in the live index.

    ``max_versions``: the newest N versions stay; ``max_age_days``: versions committed
    within that many days stay. ``None`` means no bound of that kind.
    """

    max_versions: int | None = None
    max_age_days: int | None = None

    @property
    def bounded(self) -> bool:
        """Whether the rule limits anything at all."""
        return self.max_versions is not None or self.max_age_days is not None


def period_of(at_us: int, period: Period) -> str:
    """The period (UTC) a commit time falls in: ``2026-03-01``, ``2026-W09``, ``2026-03``."""
    moment = datetime.fromtimestamp(at_us / 1e6, tz=UTC)
    if period == "daily":
        return moment.strftime("%Y-%m-%d")
    if period == "weekly":
        year, week, _ = moment.isocalendar()
        return f"{year:04d}-W{week:02d}"
    return moment.strftime("%Y-%m")


def rollup_bound(
    head_ov: int,
    commits: Sequence[tuple[int, int]],
    rule: RetentionRule,
    now_us: int,
    *,
    floor: int = 0,
) -> int:
    """The first ``ov`` that stays in the live index (everything below is rolled up).

    ``commits``: ``(ov, commit_us)`` of the live published versions below the head, in
    ``ov`` order; ``floor``: the lowest live ``ov`` (what is below is rolled up already).
    The result lies in ``[floor, head_ov]``: the head's version always stays.
    """
    bound = floor
    if rule.max_versions is not None:
        bound = max(bound, head_ov + 1 - rule.max_versions)
    if rule.max_age_days is not None:
        oldest_kept = now_us - rule.max_age_days * _DAY_US
        for ov, at in commits:
            if at >= oldest_kept:
                break
            bound = max(bound, ov + 1)
    return max(floor, min(bound, head_ov))


def merge_entries(old: Iterable[Entry], new: Iterable[Entry]) -> list[Entry]:
    """The union of two entry lists by ``ov`` (an ``ov`` present in both keeps ``old``'s
    entry: rolled-up versions never change), in ``ov`` order."""
    by_ov: dict[int, Entry] = {}
    for entry in new:
        by_ov[entry.ov] = entry
    for entry in old:
        by_ov[entry.ov] = entry
    return [by_ov[ov] for ov in sorted(by_ov)]


def manifest_prefix(tenant: str | None, db: str, collection: str, item_id: str) -> str:
    """Where a record's manifests live in the backups store."""
    return f"{item_prefix(tenant, db, collection, item_id)}rollup/"


def manifest_key(
    tenant: str | None, db: str, collection: str, item_id: str, period: str, token: str
) -> str:
    """The key of one generation of a record's manifest for ``period``.

    Unique per write (``token``): a merge writes a new object and switches the catalog
    to it, so a manifest that someone may be reading is never overwritten.
    """
    return f"{manifest_prefix(tenant, db, collection, item_id)}{period}/{token}.bson.gz"


def encode_manifest(header: Mapping[str, Any], entries: Sequence[Entry]) -> bytes:
    """The stored bytes of a manifest (gzip of BSON documents: header, then entries)."""
    parts = [bson.encode({"format": FORMAT, **header, "count": len(entries)})]
    parts.extend(bson.encode({"ov": e.ov, "at": e.at, "doc": e.doc}) for e in entries)
    return gzip.compress(b"".join(parts), compresslevel=6, mtime=0)


def decode_manifest(body: bytes, *, where: str) -> tuple[Doc, list[Entry]]:
    """Header and entries of a manifest; :class:`IntegrityError` when it is not one."""
    try:
        docs = bson.decode_all(gzip.decompress(body))
    except (OSError, EOFError, bson.errors.BSONError, ValueError) as exc:
        raise IntegrityError(f"manifest {where} cannot be decoded: {exc}") from None
    if not docs or docs[0].get("format") != FORMAT:
        raise IntegrityError(f"manifest {where} has no {FORMAT} header")
    header, rest = docs[0], docs[1:]
    if int(header.get("count", -1)) != len(rest):
        raise IntegrityError(f"manifest {where} is truncated ({len(rest)} of {header['count']})")
    entries = [Entry(int(d["ov"]), int(d["at"]), dict(d["doc"])) for d in rest]
    if [e.ov for e in entries] != sorted({e.ov for e in entries}):
        raise IntegrityError(f"manifest {where} is not in ov order")
    return header, entries


def content_of(entries: Iterable[Entry]) -> list[str]:
    """The distinct content object keys (``base64_props``) the entries refer to, sorted."""
    return sorted({str(e["key"]) for entry in entries for e in entry.doc.get("content") or ()})


def spans_of(entries: Iterable[Entry]) -> list[list[Any]]:
    """The distinct payload locations ``[key, offset, length]`` the entries refer to."""
    seen: dict[tuple[str, int | None, int | None], None] = {}
    for entry in entries:
        doc = entry.doc
        offset, length = doc.get("offset"), doc.get("length")
        seen[
            (
                str(doc["key"]),
                None if offset is None else int(offset),
                None if length is None else int(length),
            )
        ] = None
    return [list(span) for span in seen]
