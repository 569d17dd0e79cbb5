"""The public per-collection handle: validates arguments and delegates."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Generic

import pydantic

from chronos_async._content_io import ContentMode, ContentStream, check_mode, open_stream, render
from chronos_async._enrich import enrich
from chronos_async._errors import NotFoundError, ValidationError
from chronos_async._hard_delete import hard_delete
from chronos_async._history import History
from chronos_async._models import DataT, Item, Page, VersionInfo, WriteResult
from chronos_async._read import Reader
from chronos_async._restore import Progress, RestoreReport, restore_collection, restore_object
from chronos_async._scope import Scope
from chronos_async._telemetry import traced
from chronos_async._typed import ModelCodec
from chronos_async._write import Writer

__all__ = ["Collection"]


class Collection(Generic[DataT]):
    """Versioned records of one collection (of one database, optionally one tenant).

    Get one from :meth:`Chronos.collection`. Every write creates an immutable version
    and returns a :class:`WriteResult`; reads return :class:`Item` objects or ``None``.

    Rules that hold for every method:

    * Missing things: reads that look something up (:meth:`get_latest`,
      :meth:`get_version`, :meth:`get_as_of`) return ``None``; operations that need a
      version to work on (:meth:`diff`, :meth:`restore_object`, :meth:`lineage`, writes
      to a record that does not exist) raise :class:`NotFoundError`, whose ``id``/``ov``
      name what is missing.
    * Times (every ``at=``) are aware datetimes or ISO-8601 text with an offset; naive
      ones raise :class:`ValidationError` (UTC or local time cannot be told apart).
    * An untyped collection stores JSON types only and converts nothing: pass
      ``model.model_dump(mode="json")``, or use a typed collection (``model=``).

    Example::

        users = chronos.collection("users", db="myapp")
        r = await users.create({"email": "a@example.com"}, actor="signup", reason="new user")
        r = await users.update(r.id, {"email": "b@example.com"}, expected_ov=r.ov)
        old = await users.get_version(r.id, 0)

    A typed collection (``model=User``: ``Collection[User]``) takes ``User`` instances (or
    dicts, validated into one) as data and reads ``Item[User]``; data that does not fit
    raises :class:`ModelValidationError`. Its reads take no ``projection``.
    """

    def __init__(self, scope: Scope, model: type[pydantic.BaseModel] | None = None) -> None:
        self._scope = scope
        self._writer = Writer(scope)
        self._reader = Reader(scope)
        self._history = History(scope, self._reader)
        self._codec: ModelCodec[DataT] = ModelCodec(model, scope.where)

    @property
    def name(self) -> str:
        """The collection name."""
        return self._scope.collection

    @property
    def db(self) -> str:
        """The database name."""
        return self._scope.db

    @property
    def tenant(self) -> str | None:
        """The tenant this handle is bound to (``None`` for none)."""
        return self._scope.tenant

    @property
    def model(self) -> type[pydantic.BaseModel] | None:
        """The pydantic model of a typed collection (``None`` for an untyped one)."""
        return self._codec.model

    def __repr__(self) -> str:
        tenant = f", tenant={self.tenant!r}" if self.tenant else ""
        model = f", model={self.model.__name__}" if self.model else ""
        return f"<Collection {self.db}.{self.name}{tenant}{model}>"

    # -- writes ------------------------------------------------------------------------

    @traced("create")
    async def create(
        self,
        data: DataT | dict[str, Any],
        *,
        actor: str | None = None,
        reason: str | None = None,
        id: str | None = None,
        parent_id: str | None = None,
        origin_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> WriteResult:
        """Create a record (``ov=0``).

        ``data`` is a JSON object: on an untyped collection a dict of JSON types only (a
        pydantic model, or a dict holding a ``Decimal``/``datetime``, raises
        :class:`ValidationError`: pass ``model_dump(mode="json")`` or use a typed
        collection). ``id`` defaults to a new ObjectId string; an id that is taken raises
        :class:`ItemExistsError`. ``parent_id``/``origin_id`` record lineage: when only a
        parent is given, the origin is the parent's origin (or the parent itself).

        ``idempotency_key`` (every write takes one): a second call with the same key in
        this collection (and tenant) returns the first call's result and writes nothing,
        also after that call failed with ``outcome_unknown`` and also from another
        process; with other arguments it raises :class:`ValidationError`. Keys are
        remembered for ``idempotency.ttl_seconds`` (24 h). A keyed create without an
        ``id`` creates the same record on every retry.
        """
        return await self._writer.create(
            self._codec.dump(data),
            actor=actor,
            reason=reason,
            item_id=id,
            parent_id=parent_id,
            origin_id=origin_id,
            idempotency_key=idempotency_key,
        )

    @traced("update")
    async def update(
        self,
        id: str,
        data: DataT | dict[str, Any],
        *,
        expected_ov: int | None,
        actor: str | None = None,
        reason: str | None = None,
        idempotency_key: str | None = None,
    ) -> WriteResult:
        """Replace the record's data (a new version).

        ``expected_ov`` is required: the ``ov`` you read (:class:`VersionConflictError` if
        the record moved on since), or an explicit ``None`` to overwrite whatever is there.
        Why required here and optional on :meth:`delete`, :meth:`enrich` and
        :meth:`restore_object`: ``update`` replaces the whole record with data built from
        an earlier read, so without the check a change made since that read is silently
        lost; the others do not build on the data you read (a merge applies to whatever is
        current). Updating a deleted record raises :class:`ItemDeletedError`, a missing
        one :class:`NotFoundError`. ``data``: as for :meth:`create`. ``idempotency_key``:
        as for :meth:`create`.
        """
        return await self._writer.update(
            id,
            self._codec.dump(data),
            expected_ov=expected_ov,
            actor=actor,
            reason=reason,
            idempotency_key=idempotency_key,
        )

    @traced("delete")
    async def delete(
        self,
        id: str,
        *,
        expected_ov: int | None = None,
        actor: str | None = None,
        reason: str | None = None,
        hard: bool = False,
        idempotency_key: str | None = None,
    ) -> WriteResult:
        """Delete the record.

        By default a logical delete: a new version marked deleted; history is kept and
        :meth:`restore_object` can bring it back. ``hard=True`` (only when the config's
        ``hard_delete_enabled`` is set) removes the record, its versions and payloads; it
        takes no ``idempotency_key`` (no version remains to record it).

        ``expected_ov`` is optional (default ``None``: no check): a delete does not build
        on data read earlier, so it cannot lose a concurrent change the way
        :meth:`update` can; pass the ``ov`` you read to refuse a record that moved on.
        """
        if hard:
            if idempotency_key is not None:
                raise ValidationError("a hard delete takes no idempotency_key")
            return await hard_delete(self._writer, id, expected_ov=expected_ov)
        return await self._writer.delete(
            id,
            expected_ov=expected_ov,
            actor=actor,
            reason=reason,
            idempotency_key=idempotency_key,
        )

    # -- reads -------------------------------------------------------------------------

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

    # -- history-changing writes -------------------------------------------------------

    @traced("enrich")
    async def enrich(
        self,
        id: str,
        patch: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        *,
        function_id: str | None = None,
        actor: str | None = None,
        reason: str | None = None,
        expected_ov: int | None = None,
        idempotency_key: str | None = None,
    ) -> WriteResult:
        """Merge ``patch`` (or a list of patches, in order) into the data as one version.

        Objects deep-merge, arrays are unioned (order kept, deep-equal duplicates
        dropped), scalars and ``None`` in the patch replace. ``function_id`` is recorded
        on the version and added to the record's ``function_ids``. With
        ``expected_ov=None`` a conflicting concurrent write is retried internally (a merge
        applies to whatever is current); with an ``expected_ov`` a stale one raises
        :class:`VersionConflictError`. A result equal to the current data stores nothing
        (``changed=False``). Enriching a deleted record raises :class:`ItemDeletedError`.
        On a typed collection patches stay JSON dicts; a merged result the model refuses
        raises :class:`ModelValidationError` (nothing is written).

        Example::

            await users.enrich(r.id, {"tags": ["vip"], "score": {"risk": 0.2}},
                               function_id="scorer@v1", reason="nightly scoring")
        """
        return await enrich(
            self._writer,
            id,
            patch,
            function_id=function_id,
            actor=actor,
            reason=reason,
            expected_ov=expected_ov,
            idempotency_key=idempotency_key,
            check=self._codec.check if self.model else None,
        )

    @traced("restore_object")
    async def restore_object(
        self,
        id: str,
        *,
        ov: int | None = None,
        at: datetime | str | None = None,
        actor: str | None = None,
        reason: str | None = None,
        expected_ov: int | None = None,
        idempotency_key: str | None = None,
    ) -> WriteResult:
        """Add a version whose data is version ``ov``'s (or the record's state at ``at``).

        Append-only: history keeps everything; the new version records
        ``restored_from``. Restoring a deleted record to a version before its deletion
        brings it back; restoring to a deletion deletes it. Exactly one of ``ov``/``at``.

        A target that does not exist raises :class:`NotFoundError` (``ov`` names a missing
        version; for ``at``, the record did not exist yet). ``at`` is an aware datetime or
        ISO-8601 text with an offset (naive: :class:`ValidationError`). ``expected_ov`` is
        optional: a restore does not build on data read earlier (see :meth:`update`).

        Example::

            await users.restore_object(r.id, at="2026-03-01T00:00:00Z", reason="undo import")
        """
        return await restore_object(
            self._writer,
            id,
            ov=ov,
            at=at,
            actor=actor,
            reason=reason,
            expected_ov=expected_ov,
            idempotency_key=idempotency_key,
        )

    @traced("restore_collection")
    async def restore_collection(
        self,
        *,
        cv: int | None = None,
        at: datetime | str | None = None,
        actor: str | None = None,
        reason: str | None = None,
        concurrency: int | None = None,
        progress: Progress | None = None,
    ) -> RestoreReport:
        """Return every record (of this tenant) to its state at collection version ``cv``
        or time ``at``, append-only.

        Records changed since are restored, records created since are logically deleted,
        records deleted since come back. Only records changed since the target are
        touched (found through the version index). Safe to run again after an
        interruption: records already in their target state are left alone.
        ``progress(done, total)`` (sync or async) is called after each record. ``at`` is
        an aware datetime or ISO-8601 text with an offset (naive: :class:`ValidationError`).

        Example::

            report = await users.restore_collection(at="2026-03-01T00:00:00Z")
            print(len(report.restored), len(report.deleted), report.failed)
        """
        return await restore_collection(
            self._writer,
            cv=cv,
            at=at,
            actor=actor,
            reason=reason,
            concurrency=concurrency,
            progress=progress,
        )
