"""The read operations: latest, a version, as-of a time, list by metadata, history.

Readers trust a version only up to the head's ``ov``: a version above it is a claim
whose writer has not published it (yet, or ever), so it is invisible. Every payload is
verified against its sha256 before it is returned.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from chronos_async._args import check_ov
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
from chronos_async._payloads import load_data
from chronos_async._scope import Scope

__all__ = ["Reader", "parse_at"]

#: The last representable commit time (a day short of datetime.max, so any time zone fits).
_LAST_US = to_us(datetime(9999, 12, 30, tzinfo=UTC))
#: Head fields a list never needs (the lease).
_LIGHT_WITH_INLINE = {"lease_token": 0, "lease_owner": 0}

Doc = dict[str, Any]


def parse_at(at: datetime | str) -> int:
    """A point in time (aware or naive-UTC datetime, or ISO-8601 text) in epoch µs."""
    if isinstance(at, str):
        try:
            at = datetime.fromisoformat(at.replace("Z", "+00:00"))
        except ValueError:
            raise ValidationError(f"not an ISO-8601 time: {at!r}") from None
    if not isinstance(at, datetime):
        raise ValidationError("at must be a datetime or an ISO-8601 string")
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
            urls["payload"] = await self.scope.store.presign_get(
                doc["key"], ttl_seconds=ttl_seconds
            )
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
        head = await self.scope.repo.find_head(head_id(self.scope.tenant, item_id))
        if head is None or (head.get("deleted") and not include_deleted):
            return None
        return await self._item(
            head, projection=projection, presign=presign, ttl_seconds=ttl_seconds
        )

    async def _head_ov(self, item_id: str) -> int | None:
        head = await self.scope.repo.find_head(
            head_id(self.scope.tenant, item_id), with_inline=False
        )
        return None if head is None else int(head["ov"])

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
        head_ov, doc = await asyncio.gather(
            self._head_ov(item_id),
            self.scope.repo.find_version(version_id(self.scope.tenant, item_id, ov)),
        )
        if doc is None or head_ov is None or ov > head_ov:
            return None
        return await self._item(
            doc, projection=projection, presign=presign, ttl_seconds=ttl_seconds
        )

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
        # At most one version can be claimed-but-unpublished, so two candidates suffice.
        head_ov, candidates = await asyncio.gather(
            self._head_ov(item_id),
            self.scope.repo.find_versions_at(self.scope.t, item_id, at_us, limit=2),
        )
        if head_ov is None:
            return None
        visible = [d for d in candidates if int(d["ov"]) <= head_ov]
        if not visible or (visible[0].get("deleted") and not include_deleted):
            return None
        return await self._item(
            visible[0], projection=projection, presign=presign, ttl_seconds=ttl_seconds
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
        """One page of current records whose indexed props match ``filter``."""
        limits = self.scope.config.limits
        if limit is None:
            limit = limits.default_list_limit
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValidationError("limit must be a positive integer")
        limit = min(limit, limits.max_list_limit)
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
        docs = [
            doc
            async for doc in self.scope.repo.find_heads(
                {"$and": clauses}, sort=order, limit=limit + 1, projection=_LIGHT_WITH_INLINE
            )
        ]
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
