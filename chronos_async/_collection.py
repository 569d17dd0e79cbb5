"""The public per-collection handle: validates arguments and delegates.

The writes are here; the reads are inherited from
:class:`~chronos_async._collection_reads.CollectionReads`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import pydantic

from chronos_async._collection_reads import CollectionReads
from chronos_async._enrich import enrich
from chronos_async._errors import ValidationError
from chronos_async._hard_delete import hard_delete
from chronos_async._history import History
from chronos_async._models import DataT, WriteResult
from chronos_async._read import Reader
from chronos_async._restore import Progress, RestoreReport, restore_collection, restore_object
from chronos_async._scope import Scope
from chronos_async._telemetry import traced
from chronos_async._typed import ModelCodec
from chronos_async._write import Writer

__all__ = ["Collection"]


class Collection(CollectionReads[DataT]):
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

    # -- reads: get_latest, get_version, get_as_of, open_content, list_by_meta, history,
    # -- diff and lineage are inherited from CollectionReads (_collection_reads.py)

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
