"""Queued operations: what is stored, how long to wait, what is worth retrying (pure).

A queued write is a document holding everything needed to apply it later, without the
caller: the collection (tenant, database, name), the operation and its arguments (the
record's data as its canonical JSON text, exactly the bytes that will be stored), the
idempotency key every attempt uses (so an operation is applied once however often it
is attempted), and the attempt that failed first when its outcome was unknown (so a
version it may have published is found, not written again).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import orjson
from bson import ObjectId
from tenacity import RetryCallState, Retrying, wait_random_exponential

from chronos_async._errors import ChronosError, LockTimeoutError, StorageError
from chronos_async._models import Operation, WriteResult, from_us, result_from_doc

__all__ = [
    "FallbackOp",
    "OpState",
    "QueuedWrite",
    "QueueStats",
    "decode_data",
    "encode_data",
    "error_doc",
    "is_worth_retrying",
    "new_op_id",
    "op_from_doc",
    "retry_delay_s",
]

Doc = dict[str, Any]
OpState = Literal["queued", "running", "done", "cancelled", "dead", "spooled"]


def new_op_id() -> str:
    """A fresh operation id: ``op_`` + an ObjectId (sortable by time) + 4 random bytes."""
    return f"op_{ObjectId()}{secrets.token_hex(4)}"


def retry_delay_s(attempt: int, *, base_ms: int, max_ms: int) -> float:
    """Seconds before attempt ``attempt + 1``: exponential backoff with full jitter.

    A uniform draw between 0 and ``min(max, base * 2 ** (attempt - 1))`` (tenacity's
    ``wait_random_exponential``), so many operations failing together spread out.
    """
    state = RetryCallState(Retrying(), None, (), {})
    state.attempt_number = max(1, attempt)
    wait = wait_random_exponential(multiplier=base_ms / 1000, max=max_ms / 1000)
    return float(wait(state))


def is_worth_retrying(error: BaseException) -> bool:
    """Whether a failed attempt may succeed later, decided by type, never by message.

    Retryable storage errors (an outage, a timeout, a write whose outcome is unknown)
    and a busy record (its lease was not granted in time) are; everything else is final:
    a validation error, a version conflict, a deleted or missing record, a lost lease
    (another writer took the record over: the caller's view is stale), an integrity error.
    """
    if isinstance(error, StorageError):
        return error.retryable or error.outcome_unknown
    return isinstance(error, LockTimeoutError)


@dataclass(frozen=True, slots=True)
class QueuedWrite:
    """A write that could not be applied now and was queued durably (it is not visible
    until the worker applies it).

    Returned instead of a :class:`~chronos_async.WriteResult` by the write methods of a
    handle from ``chronos.fallback.collection(...)``; ``await chronos.fallback.wait(
    op_id)`` gives the final result. ``id`` is the record's id (for a create, the id the
    record will have); ``spooled`` is true when MongoDB did not answer either and the
    operation waits in the local journal (``fallback.spool_dir``).
    """

    op_id: str
    id: str
    op: Operation
    queued_at: datetime
    reason: str
    spooled: bool = False
    #: Always true: tells a queued write from a :class:`~chronos_async.WriteResult`.
    queued: Literal[True] = True


@dataclass(frozen=True, slots=True)
class FallbackOp:
    """A queued (or dead-lettered) operation, as the queue's tools show it."""

    op_id: str
    state: OpState
    op: Operation
    tenant: str | None
    db: str
    collection: str
    id: str
    attempts: int
    created_at: datetime
    next_at: datetime | None
    last_error: str | None
    result: WriteResult | None = None
    #: Why it was dead-lettered, and when (dead letters only).
    reason: str | None = None
    failed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class QueueStats:
    """Counts of the queue (over every backend, and the local journal)."""

    queued: int
    running: int
    done: int
    cancelled: int
    dead: int
    spooled: int
    #: Seconds since the oldest operation not finished (queued or running) was queued
    #: (0 when none).
    oldest_waiting_s: float
    #: Operations not finished (queued or running), by operation.
    by_op: dict[str, int] = field(default_factory=dict)


def op_from_doc(doc: Mapping[str, Any], state: OpState | None = None) -> FallbackOp:
    """The :class:`FallbackOp` view of a queue (or dead-letter) document."""
    error = doc.get("last_error")
    result = doc.get("result")
    next_us = doc.get("next_us")
    return FallbackOp(
        op_id=str(doc["_id"]),
        state=state or doc.get("state", "queued"),
        op=doc["op"],
        tenant=doc.get("tenant"),
        db=str(doc["db"]),
        collection=str(doc["collection"]),
        id=str(doc["args"]["id"]),
        attempts=int(doc.get("attempts", 0)),
        created_at=from_us(int(doc["created_us"])),
        next_at=from_us(int(next_us)) if next_us is not None else None,
        last_error=None if not error else f"{error.get('type')}: {error.get('message')}",
        result=result_from_doc(result) if result else None,
        reason=doc.get("reason"),
        failed_at=from_us(int(doc["failed_us"])) if doc.get("failed_us") else None,
    )


def error_doc(error: BaseException) -> Doc:
    """What is kept of an attempt's error: its type, message and whether it may pass."""
    return {
        "type": type(error).__name__,
        "message": str(error)[:2000],
        "retryable": is_worth_retrying(error),
        "chronos": isinstance(error, ChronosError),
    }


def encode_data(data: Any) -> str:
    """A record's data as canonical JSON text (already validated by the first attempt)."""
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS).decode()


def decode_data(text: str) -> Any:
    """The data stored by :func:`encode_data`."""
    return orjson.loads(text)
