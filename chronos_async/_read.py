"""The read operations: latest, a version, as-of a time, list by metadata.

Readers trust a version only up to the head's ``ov``: a version above it is a claim
whose writer has not published it (yet, or ever), so it is invisible. A *young* claim
(see :mod:`._publish`) may still be published with a commit time before this read
started, so a read that meets one waits for its outcome (a millisecond or two; at most
the commit window when its writer died): that is what makes as-of answers final. Every
payload is verified against its sha256 before it is returned.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from chronos_async._args import check_ov
from chronos_async._asof import AsOf, finalized, is_young, pick_as_of
from chronos_async._errors import ValidationError
from chronos_async._filters import (
    after_filter,
    compile_filter,
    compile_sort,
    decode_cursor,
    encode_cursor,
    sort_values,
)
from chronos_async._keys import head_id, validate_id, version_id
from chronos_async._meta import project
from chronos_async._models import Item, Page, from_us, to_us
from chronos_async._payloads import load_data, presign_payload
from chronos_async._scope import Scope, now_us
from chronos_async.lifecycle._versions import rolled_as_of, rolled_version

__all__ = ["Reader", "parse_at", "pause_for_claim"]

#: The last representable commit time (a day short of datetime.max, so any time zone fits).
_LAST_US = to_us(datetime(9999, 12, 30, tzinfo=UTC))
#: Head fields a list never needs (who holds the lease; whether one is held matters).
_LIGHT_WITH_INLINE = {"lease_owner": 0}

Doc = dict[str, Any]
#: Polling a young claim for its outcome: first pause and longest pause (seconds).
_FIRST_PAUSE, _LONGEST_PAUSE = 0.0005, 0.02


async def pause_for_claim(scope: Scope, claim: Doc, tries: int) -> None:
    """Sleep a little (growing with ``tries``) while a young claim is being published."""
    left = (int(claim.get("claim_us") or 0) + scope.commit_us - now_us()) / 1e6
    await asyncio.sleep(max(0.0, min(_FIRST_PAUSE * 2**tries, _LONGEST_PAUSE, left)))


def parse_at(at: datetime | str) -> int:
    """A point in time (an aware datetime, or ISO-8601 text with an offset) in epoch µs.

    A naive datetime (or text without ``Z``/``+hh:mm``) is refused with
    :class:`ValidationError`: whether it meant UTC or the machine's local time cannot be
    told, and guessing would silently read or restore the wrong state.
    """
    text = at if isinstance(at, str) else None
    if isinstance(at, str):
        try:
            at = datetime.fromisoformat(at.replace("Z", "+00:00"))
        except ValueError:
            raise ValidationError(f"not an ISO-8601 time: {at!r}") from None
    if not isinstance(at, datetime):
        raise ValidationError("at must be a datetime or an ISO-8601 string")
    if at.tzinfo is None or at.utcoffset() is None:
        given = f"ISO-8601 text without an offset ({text!r})" if text else "a naive datetime"
        raise ValidationError(
            f"at must carry a time zone, not {given}: pass an aware datetime "
            "(datetime(2026, 3, 1, tzinfo=UTC), datetime.now(UTC)) or text with an offset "
            "('2026-03-01T00:00:00Z', '...+02:00')"
        )
    us = to_us(at)
    if not 0 <= us <= _LAST_US:
        raise ValidationError("at must lie between 1970-01-01 and 9999-12-30 (UTC)")
    return us


class Reader:
    """Read operations bound to one collection handle's :class:`Scope`."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    async def _item(
        self,
        doc: Doc,
        *,
        projection: Sequence[str] | None,
        presign: bool,
        ttl_seconds: int,
    ) -> Item:
        data = project(await load_data(self.scope, doc), projection)
        urls: dict[str, str] = {}
        if presign:
            urls["payload"] = await presign_payload(self.scope, doc, ttl_seconds)
        deleted_us = doc.get("deleted_us")
        return Item(
            id=doc["id"],
            ov=int(doc["ov"]),
            cv=int(doc["cv"]),
            data=data,
            created_at=from_us(int(doc["created_us"])),
            updated_at=from_us(int(doc["at"])),
            deleted_at=from_us(int(deleted_us)) if deleted_us is not None else None,
            deleted=bool(doc.get("deleted")),
            actor=doc.get("actor"),
            reason=doc.get("reason"),
            parent_id=doc.get("parent_id"),
            origin_id=doc.get("origin_id"),
            function_ids=tuple(doc.get("function_ids") or ()),
            urls=urls,
        )

    def _check_ttl(self, presign: bool, ttl_seconds: int) -> None:
        if not presign:
            return
        limit = self.scope.config.limits.max_presign_seconds
        if (
            isinstance(ttl_seconds, bool)
            or not isinstance(ttl_seconds, int)
            or not 0 < ttl_seconds <= limit
        ):
            raise ValidationError(f"ttl_seconds must be an integer from 1 to {limit}")

    # -- single records ----------------------------------------------------------------

    async def latest(
        self,
        item_id: str,
        *,
        projection: Sequence[str] | None,
        presign: bool,
        ttl_seconds: int,
        include_deleted: bool,
    ) -> Item | None:
        """The current version, or ``None`` (no record, or deleted unless asked for)."""
        item_id = validate_id(item_id)
        self._check_ttl(presign, ttl_seconds)
        await self.scope.ready()
        head = await self.current_head(item_id)
        if head is None or (head.get("deleted") and not include_deleted):
            return None
        return await self._item(
            head, projection=projection, presign=presign, ttl_seconds=ttl_seconds
        )

    async def current_head(self, item_id: str, *, with_inline: bool = True) -> Doc | None:
        """The head once no young claim can still change it (``None``: no record)."""
        scope = self.scope
        hid = head_id(scope.tenant, item_id)
        for tries in itertools.count():
            head = await scope.repo.find_head(hid, with_inline=with_inline)
            claim = await self._young_claim(item_id, head)
            if claim is None:
                return head
            await pause_for_claim(scope, claim, tries)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _young_claim(self, item_id: str, head: Doc | None) -> Doc | None:
        """A young claim on the version after ``head`` (only a leased head can have one)."""
        if head is not None and head.get("lease_token") is None:
            return None
        ov = 0 if head is None else int(head["ov"]) + 1
        claim = await self.scope.repo.find_version(version_id(self.scope.tenant, item_id, ov))
        if claim is None or not is_young(claim, now_us(), self.scope.commit_us):
            return None
        return claim

    async def _young_claim_in(self, heads: Sequence[Doc]) -> Doc | None:
        """A young claim on any of the (leased) ``heads``, or ``None``."""
        leased = [h for h in heads if h.get("lease_token") is not None]
        if not leased:
            return None
        scope = self.scope
        vids = [version_id(scope.tenant, h["id"], int(h["ov"]) + 1) for h in leased]
        now = now_us()
        claims = (await scope.repo.find_versions(vids)).values()
        return next((c for c in claims if is_young(c, now, scope.commit_us)), None)

    async def as_of_version(self, item_id: str, at_us: int) -> Doc | None:
        """The version current at ``at_us`` (commit time filled in), once it is final."""
        scope = self.scope
        hid = head_id(scope.tenant, item_id)
        for tries in itertools.count():
            # The head first: every version it publishes exists before the query below.
            head = await scope.repo.find_head(hid, with_inline=False)
            candidates = await scope.repo.find_versions_before(scope.t, item_id, at_us, limit=2)
            found: AsOf = pick_as_of(head, candidates, at_us)
            if found.pending is None or not is_young(found.pending, now_us(), scope.commit_us):
                if found.version is None and head is not None:
                    # Before the live index (rolled up), or before creation (no catalog).
                    return await rolled_as_of(scope, item_id, at_us)
                return found.version
            await pause_for_claim(scope, found.pending, tries)
        raise AssertionError("unreachable")  # pragma: no cover

    async def version(
        self,
        item_id: str,
        ov: int,
        *,
        projection: Sequence[str] | None,
        presign: bool,
        ttl_seconds: int,
    ) -> Item | None:
        """Version ``ov`` exactly (deleted versions included), or ``None``."""
        item_id = validate_id(item_id)
        if ov is None:
            raise ValidationError("ov is required")
        check_ov(ov, "ov")
        self._check_ttl(presign, ttl_seconds)
        await self.scope.ready()
        doc = await self.published_version(item_id, ov)
        if doc is None:
            return None
        return await self._item(
            doc, projection=projection, presign=presign, ttl_seconds=ttl_seconds
        )

    async def published_version(self, item_id: str, ov: int) -> Doc | None:
        """Version ``ov`` if it is published, with its commit time filled in."""
        scope = self.scope
        hid = head_id(scope.tenant, item_id)
        vids = [version_id(scope.tenant, item_id, n) for n in (ov, ov + 1)]
        head, docs = await asyncio.gather(
            scope.repo.find_head(hid, with_inline=False), scope.repo.find_versions(vids)
        )
        doc = docs.get(vids[0])
        if head is None or ov > int(head["ov"]):
            return None
        if doc is None:
            return await rolled_version(scope, item_id, ov)  # rolled up (or never existed)
        if ov == int(head["ov"]):
            return finalized(doc, int(head["at"]))
        # Published before the head's version: its successor holds its commit time (read
        # again if the query above ran before the successor was claimed).
        after = docs.get(vids[1]) or await scope.repo.find_version(vids[1])
        if after is None:
            # Rolled up meanwhile (with its successor), or the history is broken (verify).
            return await rolled_version(scope, item_id, ov)
        return finalized(doc, int(after["prev_at"]))

    async def as_of(
        self,
        item_id: str,
        at: datetime | str,
        *,
        projection: Sequence[str] | None,
        presign: bool,
        ttl_seconds: int,
        include_deleted: bool,
    ) -> Item | None:
        """The newest version committed at or before ``at`` (``None`` before creation)."""
        item_id = validate_id(item_id)
        at_us = parse_at(at)
        self._check_ttl(presign, ttl_seconds)
        await self.scope.ready()
        doc = await self.as_of_version(item_id, at_us)
        if doc is None or (doc.get("deleted") and not include_deleted):
            return None
        return await self._item(
            doc, projection=projection, presign=presign, ttl_seconds=ttl_seconds
        )

    # -- lists -------------------------------------------------------------------------

    async def list_by_meta(
        self,
        filter: Mapping[str, Any] | None,
        *,
        limit: int | None,
        after: str | None,
        sort: Mapping[str, int] | Sequence[tuple[str, int]] | None,
        include_deleted: bool,
        projection: Sequence[str] | None,
        presign: bool,
        ttl_seconds: int,
    ) -> Page:
        """One page of current records whose indexed props match ``filter``.

        Records of the page with a young claim are waited for (the page is read again),
        like :meth:`latest`; a record whose pending version would bring it into the page
        shows up only once that version is published.
        """
        limits = self.scope.config.limits
        if limit is None:
            limit = min(limits.default_list_limit, limits.max_list_limit)
        if (
            isinstance(limit, bool)
            or not isinstance(limit, int)
            or not 1 <= limit <= limits.max_list_limit
        ):
            # Refused, not clamped: a caller asking for 5000 and silently getting 1000
            # may take the page for the whole result.
            raise ValidationError(
                f"limit must be an integer from 1 to {limits.max_list_limit} "
                "(limits.max_list_limit); page through more with next_cursor"
            )
        self._check_ttl(presign, ttl_seconds)
        props = self.scope.cmap.indexed_props
        query = compile_filter(filter, props)
        order = compile_sort(sort, props)
        clauses: list[Doc] = [{"t": {"$eq": self.scope.t}}]
        if query:
            clauses.append(query)
        if not include_deleted:
            clauses.append({"deleted": {"$eq": False}})
        if after is not None:
            clauses.append(after_filter(order, decode_cursor(after, order)))
        await self.scope.ready()
        for tries in itertools.count():
            docs = [
                doc
                async for doc in self.scope.repo.find_heads(
                    {"$and": clauses}, sort=order, limit=limit + 1, projection=_LIGHT_WITH_INLINE
                )
            ]
            claim = await self._young_claim_in(docs[:limit])
            if claim is None:
                break
            await pause_for_claim(self.scope, claim, tries)
        more = len(docs) > limit
        docs = docs[:limit]
        items = await asyncio.gather(
            *(
                self._item(d, projection=projection, presign=presign, ttl_seconds=ttl_seconds)
                for d in docs
            )
        )
        cursor = encode_cursor(order, sort_values(docs[-1], order)) if more and docs else None
        return Page(items=tuple(items), next_cursor=cursor)
