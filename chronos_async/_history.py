"""History of a record: its versions (optionally with diffs), diffs between two versions,
and its lineage (parent, grandparent, ... up to the origin).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from chronos_async._args import check_ov
from chronos_async._errors import NotFoundError, ValidationError
from chronos_async._jsonpatch import make_patch
from chronos_async._keys import head_id, validate_id, version_id
from chronos_async._models import Item, VersionInfo, from_us
from chronos_async._payloads import load_data
from chronos_async._read import Reader
from chronos_async._scope import Scope
from chronos_async.lifecycle._versions import rolled_version, versions_newest_first

__all__ = ["History"]

Doc = dict[str, Any]
#: Lineage walks stop here: a longer chain is almost certainly a cycle in the data.
_MAX_LINEAGE = 1000


def _info(doc: Doc, diff: list[dict[str, Any]] | None = None) -> VersionInfo:
    return VersionInfo(
        id=doc["id"],
        ov=int(doc["ov"]),
        cv=int(doc["cv"]),
        at=from_us(int(doc["at"])),
        op=doc["op"],
        actor=doc.get("actor"),
        reason=doc.get("reason"),
        deleted=bool(doc.get("deleted")),
        size=int(doc["size"]),
        sha256=doc["sha256"],
        function_id=doc.get("function_id"),
        restored_from=doc.get("restored_from"),
        diff=None if diff is None else tuple(diff),
    )


class History:
    """History operations bound to one collection handle's :class:`Scope`."""

    def __init__(self, scope: Scope, reader: Reader) -> None:
        self.scope = scope
        self.reader = reader

    async def _head(self, item_id: str) -> Doc | None:
        return await self.scope.repo.find_head(
            head_id(self.scope.tenant, item_id), with_inline=False
        )

    async def versions(
        self, item_id: str, *, include_diff: bool = False, batch_size: int = 100
    ) -> AsyncIterator[VersionInfo]:
        """Every published version, newest first; with ``include_diff`` each carries the
        JSON Patch from its predecessor's data (from ``{}`` for ``ov=0``)."""
        item_id = validate_id(item_id)
        await self.scope.ready()
        head = await self._head(item_id)
        if head is None:
            return
        # Newest first, live then rolled up (commit times filled in: a version's is its
        # successor's ``prev_at``); a version's diff needs its predecessor's data.
        docs = versions_newest_first(
            self.scope, item_id, head, with_inline=include_diff, batch_size=batch_size
        )
        held: tuple[Doc, dict[str, Any]] | None = None
        async for doc in docs:
            if not include_diff:
                yield _info(doc)
                continue
            data = await load_data(self.scope, doc)
            if held is not None:
                yield _info(held[0], make_patch(data, held[1]))
            held = (doc, data)
        if held is not None:
            yield _info(held[0], make_patch({}, held[1]))

    async def diff(self, item_id: str, from_ov: int, to_ov: int) -> list[dict[str, Any]]:
        """RFC 6902 operations turning version ``from_ov``'s data into ``to_ov``'s.

        A missing record or version raises :class:`NotFoundError` naming the argument
        (``from_ov``/``to_ov``) and the version (``ov``).
        """
        item_id = validate_id(item_id)
        for value, name in ((from_ov, "from_ov"), (to_ov, "to_ov")):
            if value is None:
                raise ValidationError(f"{name} is required")
            check_ov(value, name)
        await self.scope.ready()
        where = self.scope.where(item_id)
        head = await self._head(item_id)
        if head is None:
            raise NotFoundError(f"no record {where} (diff needs both versions)", id=item_id)
        head_ov = int(head["ov"])
        datas = []
        for ov, name in ((from_ov, "from_ov"), (to_ov, "to_ov")):
            doc = None
            if ov <= head_ov:
                doc = await self.scope.repo.find_version(version_id(self.scope.tenant, item_id, ov))
                if doc is None:
                    doc = await rolled_version(self.scope, item_id, ov)
            if doc is None:
                raise NotFoundError(
                    f"{name}={ov}: no such version of {where} (its newest is ov={head_ov})",
                    id=item_id,
                    ov=ov,
                )
            datas.append(await load_data(self.scope, doc))
        return make_patch(datas[0], datas[1])

    async def lineage(self, item_id: str) -> list[Item]:
        """The record's ancestors, nearest first: parent, grandparent, ... up to the origin.

        The walk follows ``parent_id`` within this collection (deleted ancestors
        included) and stops at a record without a parent, at one that is not in this
        collection (an external origin), or at a cycle.
        """
        item_id = validate_id(item_id)
        chain: list[Item] = []
        seen = {item_id}
        current = await self.reader.latest(
            item_id, projection=None, presign=False, ttl_seconds=1, include_deleted=True
        )
        if current is None:
            raise NotFoundError(f"no record {self.scope.where(item_id)}", id=item_id)
        while current.parent_id is not None and len(chain) < _MAX_LINEAGE:
            if current.parent_id in seen:
                break
            seen.add(current.parent_id)
            parent = await self.reader.latest(
                current.parent_id,
                projection=None,
                presign=False,
                ttl_seconds=1,
                include_deleted=True,
            )
            if parent is None:
                break
            chain.append(parent)
            current = parent
        return chain
