"""Immutable result types returned by the public API."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Generic, Literal, Self

from typing_extensions import TypeVar

__all__ = [
    "DataT",
    "Item",
    "Operation",
    "Page",
    "Summable",
    "VersionInfo",
    "WriteResult",
    "from_us",
    "result_from_doc",
    "result_to_doc",
    "to_us",
]

#: The type of a record's data as the caller sees it: ``dict[str, Any]`` (the default) or
#: the pydantic model of a typed collection (``chronos.collection(..., model=User)``).
DataT = TypeVar("DataT", default=dict[str, Any])

#: What a version recorded.
Operation = Literal["create", "update", "delete", "enrich", "restore"]


def from_us(us: int) -> datetime:
    """An aware UTC datetime from integer microseconds since the epoch."""
    return datetime.fromtimestamp(us / 1_000_000, tz=UTC).replace(microsecond=us % 1_000_000)


def to_us(at: datetime) -> int:
    """Integer microseconds since the epoch (naive datetimes are taken as UTC)."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    delta = at - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class WriteResult:
    """The outcome of a write: the record's new ``ov``, the collection's ``cv``, commit time.

    ``changed`` is false when the write stored nothing because the data was unchanged.
    """

    id: str
    ov: int
    cv: int
    at: datetime
    changed: bool = True


def result_to_doc(result: WriteResult) -> dict[str, Any]:
    """A :class:`WriteResult` as a document (kept by idempotency keys and the queue)."""
    return {
        "id": result.id,
        "ov": result.ov,
        "cv": result.cv,
        "at": to_us(result.at),
        "changed": result.changed,
    }


def result_from_doc(doc: Mapping[str, Any]) -> WriteResult:
    """The :class:`WriteResult` kept by :func:`result_to_doc`."""
    return WriteResult(
        id=str(doc["id"]),
        ov=int(doc["ov"]),
        cv=int(doc["cv"]),
        at=from_us(int(doc["at"])),
        changed=bool(doc.get("changed", True)),
    )


@dataclass(frozen=True, slots=True)
class Item(Generic[DataT]):
    """One version of a record, with its data and the facts recorded with it.

    ``data`` is a dict, or an instance of the model on a typed collection (``Item[User]``).
    ``updated_at`` is the commit time of this version; ``created_at`` that of ``ov=0``.
    ``urls`` holds presigned URLs (key ``"payload"``; ``"content:<path>"`` and
    ``"text:<path>"`` for externalized ``base64_props``) when the read asked for them.
    """

    id: str
    ov: int
    cv: int
    data: DataT
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None
    deleted: bool
    actor: str | None
    reason: str | None
    parent_id: str | None
    origin_id: str | None
    function_ids: tuple[str, ...] = ()
    urls: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class VersionInfo:
    """What ``history`` yields for each version (no payload: read it with ``get_version``).

    ``restored_from`` is the ``ov`` a restore version copied; ``function_id`` the
    enrichment function that produced an enrich version.
    """

    id: str
    ov: int
    cv: int
    at: datetime
    op: Operation
    actor: str | None
    reason: str | None
    deleted: bool
    size: int
    sha256: str
    function_id: str | None = None
    restored_from: int | None = None
    #: With ``history(id, include_diff=True)``: RFC 6902 operations from the previous
    #: version's data (from ``{}`` for ``ov=0``) to this one's.
    diff: tuple[dict[str, Any], ...] | None = None


@dataclass(frozen=True, slots=True)
class Page(Generic[DataT]):
    """One page of ``list_by_meta``; pass ``next_cursor`` as ``after`` for the next page."""

    items: tuple[Item[DataT], ...]
    next_cursor: str | None


class Summable:
    """A report dataclass whose instances add up field by field (counts add, tuples
    concatenate): the reports of several collections or backends sum into one."""

    def __add__(self, other: Self) -> Self:
        if type(other) is not type(self):
            return NotImplemented
        parts = fields(self)  # type: ignore[arg-type]
        return type(self)(*(getattr(self, f.name) + getattr(other, f.name) for f in parts))
