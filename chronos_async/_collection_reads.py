"""The read methods of the public :class:`~chronos_async.Collection` handle.

:class:`CollectionReads` is a base class of ``Collection`` (one module per concern): the
lookups, the content stream, listing, history, diff and lineage. It validates arguments,
delegates to the :class:`~chronos_async._read.Reader` and the
:class:`~chronos_async._history.History`, and shows externalized content as asked.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Generic

from chronos_async._content_io import ContentMode, ContentStream, check_mode, open_stream, render
from chronos_async._errors import NotFoundError
from chronos_async._history import History
from chronos_async._models import DataT, Item, Page, VersionInfo
from chronos_async._read import Reader
from chronos_async._scope import Scope
from chronos_async._telemetry import traced
from chronos_async._typed import ModelCodec

__all__ = ["CollectionReads"]


class CollectionReads(Generic[DataT]):
    """The read methods of :class:`~chronos_async.Collection` (its base class)."""

    _scope: Scope
    _reader: Reader
    _history: History
    _codec: ModelCodec[DataT]

    @traced("get_latest")
    async def get_latest(
        self,
        id: str,
        *,
        projection: Sequence[str] | None = None,
        presign: bool = False,
        ttl_seconds: int = 3600,
        include_deleted: bool = False,
        content: ContentMode = "data",
    ) -> Item[DataT] | None:
        """The current version, or ``None`` when there is no record or it is deleted.

        ``projection`` keeps only the listed (dotted) paths of the data. ``presign=True``
        adds a presigned GET URL of the payload under ``item.urls["payload"]``, valid for
        ``ttl_seconds`` (at most 7 days).

        Externalized properties (``base64_props``) come back as written (base64, checked
        against their sha256) by default; ``content="ref"`` returns their reference
        objects instead (nothing is fetched), and ``presign=True`` also adds a presigned
        ``url`` to each reference (and to its ``text`` rendition), also found under
        ``item.urls["content:<path>"]``: a caller can serve a large attachment straight
        from the object store.
        """
        content = check_mode(content)
        item = await self._reader.latest(
            id,
            projection=self._codec.projection(projection),
            presign=presign,
            ttl_seconds=ttl_seconds,
            include_deleted=include_deleted,
        )
        return self._codec.maybe(await self._shown(item, content, presign, ttl_seconds))

    @traced("get_version")
    async def get_version(
        self,
        id: str,
        ov: int,
        *,
        projection: Sequence[str] | None = None,
        presign: bool = False,
        ttl_seconds: int = 3600,
        content: ContentMode = "data",
    ) -> Item[DataT] | None:
        """Version ``ov`` of the record (deleted versions included), or ``None`` when the
        record or that version does not exist.

        A read answers ``None`` for what is not there; operations that need the version
        (:meth:`diff`, :meth:`restore_object`) raise :class:`NotFoundError` instead.
        ``content`` and ``presign`` work as for :meth:`get_latest`.
        """
        content = check_mode(content)
        projection = self._codec.projection(projection)
        item = await self._reader.version(
            id, ov, projection=projection, presign=presign, ttl_seconds=ttl_seconds
        )
        return self._codec.maybe(await self._shown(item, content, presign, ttl_seconds))

    @traced("get_as_of")
    async def get_as_of(
        self,
        id: str,
        at: datetime | str,
        *,
        projection: Sequence[str] | None = None,
        presign: bool = False,
        ttl_seconds: int = 3600,
        include_deleted: bool = False,
        content: ContentMode = "data",
    ) -> Item[DataT] | None:
        """The record as it was at ``at``: an aware datetime or ISO-8601 text with an
        offset (``"2026-03-01T00:00:00Z"``); a naive datetime, or text without an offset,
        raises :class:`ValidationError` rather than being guessed as UTC or local time.

        Returns the newest version committed at or before ``at``; ``None`` before the
        record was created, or when it was deleted at that time (unless
        ``include_deleted``). ``content`` and ``presign`` work as for :meth:`get_latest`.
        """
        content = check_mode(content)
        item = await self._reader.as_of(
            id,
            at,
            projection=self._codec.projection(projection),
            presign=presign,
            ttl_seconds=ttl_seconds,
            include_deleted=include_deleted,
        )
        return self._codec.maybe(await self._shown(item, content, presign, ttl_seconds))

    async def _shown(
        self, item: Item[Any] | None, content: ContentMode, presign: bool, ttl_seconds: int
    ) -> Item[Any] | None:
        """``item`` with its externalized properties as the read asked for them."""
        if item is None:
            return None
        return await render(
            self._scope, item, content=content, presign=presign, ttl_seconds=ttl_seconds
        )

    @traced("open_content")
    async def open_content(
        self,
        id: str,
        path: str,
        *,
        ov: int | None = None,
        text: bool = False,
        chunk_size: int | None = None,
    ) -> ContentStream:
        """Stream one externalized value (a ``base64_props`` property) of the current
        version, or of version ``ov``, as its decoded bytes.

        ``path`` names one value: ``"avatar"``, ``"files[0]"``, ``"attachments[2].data"``.
        ``text=True`` streams its text rendition (UTF-8) instead. The result is an async
        iterator of chunks (``chunk_size`` bytes, default 1 MiB, read with ranged GETs)
        with ``size``, ``sha256`` and ``content_type``; the bytes are checked against the
        sha256 as they pass (:class:`IntegrityError` at the end when they differ).
        No record (or version): :class:`NotFoundError`; no content at ``path``: the same.

        Example::

            stream = await users.open_content(user_id, "attachments[0].data")
            headers = {"Content-Type": stream.content_type, "Content-Length": str(stream.size)}
            async for chunk in stream:
                await send(chunk)
        """
        if ov is None:
            item = await self._reader.latest(
                id, projection=None, presign=False, ttl_seconds=1, include_deleted=False
            )
        else:
            item = await self._reader.version(id, ov, projection=None, presign=False, ttl_seconds=1)
        if item is None:
            raise NotFoundError(
                f"no {'version ' + str(ov) + ' of ' if ov is not None else ''}"
                f"{self._scope.where(id)}",
                id=id,
                ov=ov,
            )
        return open_stream(self._scope, item, path, text=text, chunk_size=chunk_size)

    @traced("list_by_meta")
    async def list_by_meta(
        self,
        filter: Mapping[str, Any] | None = None,
        *,
        limit: int | None = None,
        after: str | None = None,
        sort: Mapping[str, int] | Sequence[tuple[str, int]] | None = None,
        include_deleted: bool = False,
        projection: Sequence[str] | None = None,
        presign: bool = False,
        ttl_seconds: int = 3600,
        content: ContentMode = "data",
    ) -> Page[DataT]:
        """Current records whose indexed properties match ``filter``, one page at a time.

        ``filter`` may only name the collection map's ``indexed_props`` and use ``$eq $ne
        $in $nin $gt $gte $lt $lte $exists`` (plus ``$and``/``$or``). ``sort`` names
        indexed props or ``updated_at``/``created_at``/``id`` (default newest update
        first). ``limit`` defaults to 50; above ``limits.max_list_limit`` (1000) it raises
        :class:`ValidationError` (never silently fewer). Pass the page's ``next_cursor``
        as ``after`` to get the next page.

        Example::

            page = await users.list_by_meta({"status": "active"}, limit=100)
            while page.next_cursor:
                page = await users.list_by_meta({"status": "active"}, after=page.next_cursor)

        ``content`` and ``presign`` work as for :meth:`get_latest` (with
        ``content="ref"`` a page fetches no attachment).
        """
        content = check_mode(content)
        page = await self._reader.list_by_meta(
            filter,
            limit=limit,
            after=after,
            sort=sort,
            include_deleted=include_deleted,
            projection=self._codec.projection(projection),
            presign=presign,
            ttl_seconds=ttl_seconds,
        )
        if self._scope.cmap.base64_props:
            shown = [await self._shown(i, content, presign, ttl_seconds) for i in page.items]
            page = dataclasses.replace(page, items=tuple(i for i in shown if i is not None))
        return self._codec.page(page)

    def history(self, id: str, *, include_diff: bool = False) -> AsyncIterator[VersionInfo]:
        """Every version of the record, newest first (metadata only)::

            async for v in users.history(record_id):
                print(v.ov, v.op, v.at, v.actor, v.reason)

        With ``include_diff=True`` each :class:`VersionInfo` carries ``diff``: the RFC 6902
        operations from the previous version's data to its own (this reads payloads).
        """
        return self._history.versions(id, include_diff=include_diff)

    @traced("diff")
    async def diff(self, id: str, from_ov: int, to_ov: int) -> list[dict[str, Any]]:
        """RFC 6902 JSON Patch operations turning version ``from_ov``'s data into ``to_ov``'s.

        Both versions must exist: a missing record or version raises
        :class:`NotFoundError` naming the argument (``"to_ov=999: no such version..."``)
        and the version (``ov``); :meth:`get_version` is the read that answers ``None``.

        Example::

            await users.diff(r.id, 0, 2)
            # [{"op": "replace", "path": "/status", "value": "active"}, ...]
        """
        return await self._history.diff(id, from_ov, to_ov)

    @traced("lineage")
    async def lineage(self, id: str) -> list[Item[DataT]]:
        """The record's ancestors, nearest first (parent, grandparent, ... origin).

        Follows ``parent_id`` within this collection; stops at a record without a parent,
        at a parent outside the collection, or at a cycle. No such record:
        :class:`NotFoundError`.
        """
        items = await self._history.lineage(id)
        if self._scope.cmap.base64_props:
            shown = [await self._shown(i, "data", False, 1) for i in items]
            items = [i for i in shown if i is not None]
        return self._codec.items(items)
