"""The one exception tree of chronos-async.

Every error the library raises on purpose derives from :class:`ChronosError`. Where a
builtin fits, the error also derives from it, so callers can catch either::

    ChronosError(Exception)
    ├── ConfigError(ValueError)            invalid configuration; nothing was started
    ├── ValidationError(ValueError)        bad arguments or payload; nothing was written
    │   └── ModelValidationError           data is not valid as a typed collection's
    │                                      model (a write: nothing written; a read: the
    │                                      stored version no longer fits the model)
    ├── NotFoundError(LookupError)         no such record (or version)
    ├── VersionConflictError               expected_ov did not match the head's ov
    │   └── ItemExistsError                create with an id that is already taken
    ├── ItemDeletedError                   update/enrich of a logically deleted record
    ├── LockTimeoutError(TimeoutError)     the item's lease was not granted in time
    ├── LockLostError                      the lease expired under a slow writer and was
    │                                      taken over; the write stopped before its claim
    ├── StorageError(OSError)              a backend failed; ``retryable`` says if a retry
    │                                      can help, ``outcome_unknown`` if the write may
    │                                      have been committed anyway
    ├── IntegrityError                     stored bytes do not match their sha256, or the
    │                                      metadata points at a payload that is missing
    ├── RestoreInterruptedError            restore_collection stopped early (its progress
    │                                      callback failed); ``report`` says what was done
    ├── QueuedOperationError               a queued write (fallback queue) will not, or not
    │   │                                  yet, give a result:
    │   ├── DeadLetterError                it was moved to the dead letters (``reason``)
    │   ├── OperationCancelledError        it was cancelled
    │   └── OperationPendingError          ``wait`` timed out before it was applied
    │       (TimeoutError)
    ├── ClosedError(RuntimeError)          the Chronos instance is not open
    └── LocalServerError(RuntimeError)     an embedded server (LocalStack) failed to start
        └── ExecutableNotFoundError        its executable is not installed
            (FileNotFoundError)

Errors never carry secrets: messages name databases, collections, ids and keys, never
connection strings or credentials.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "ChronosError",
    "ClosedError",
    "ConfigError",
    "DeadLetterError",
    "ExecutableNotFoundError",
    "IntegrityError",
    "ItemDeletedError",
    "ItemExistsError",
    "LocalServerError",
    "LockLostError",
    "LockTimeoutError",
    "ModelValidationError",
    "NotFoundError",
    "OperationCancelledError",
    "OperationPendingError",
    "QueuedOperationError",
    "RestoreInterruptedError",
    "StorageError",
    "ValidationError",
    "VersionConflictError",
]


class ChronosError(Exception):
    """Base class of every error raised by chronos-async."""


class ConfigError(ChronosError, ValueError):
    """The configuration is invalid (unknown key, wrong type, inconsistent sections)."""


class ValidationError(ChronosError, ValueError):
    """An argument or payload was rejected before anything was written."""


class ModelValidationError(ValidationError):
    """Data is not valid as the pydantic model of a typed collection.

    Raised by a write (``create``/``update`` given a dict that does not validate, an
    ``enrich`` whose merged result would not): nothing was written. Raised by a read
    (``get_latest``, ``get_version``, ``list_by_meta``...) when a stored version no
    longer validates, because the model changed since it was written or an untyped handle
    wrote it: ``id`` and ``ov`` name that version.

    Why a :class:`ValidationError` and not an :class:`IntegrityError`: the stored bytes
    passed their sha256 check; nothing is corrupt, it is the data that disagrees with the
    application's model, and the application is the one to fix it (migrate the records
    through an untyped handle, or relax the model). One error for writes and reads lets a
    caller handle both in one place, and ``except ValueError`` still catches it.

    ``model`` is the model class; ``errors`` pydantic's problems (``loc``, ``msg``,
    ``type``) without the input values: like every error here it never echoes payload
    contents.
    """

    def __init__(
        self,
        message: str,
        *,
        model: type,
        id: str | None = None,
        ov: int | None = None,
        errors: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        super().__init__(message)
        self.model = model
        self.id = id
        self.ov = ov
        self.errors: tuple[dict[str, Any], ...] = tuple(dict(e) for e in errors)


class NotFoundError(ChronosError, LookupError):
    """The record (or the requested version of it) does not exist.

    Raised by operations that *need* a version to do their work (``diff``,
    ``restore_object``, ``lineage``); plain reads (``get_latest``, ``get_version``,
    ``get_as_of``) answer ``None`` instead. ``id`` names the record; ``ov`` the missing
    version when one was asked for (``None`` when the record itself is missing or the
    target was a time).
    """

    def __init__(self, message: str, *, id: str | None = None, ov: int | None = None) -> None:
        super().__init__(message)
        self.id = id
        self.ov = ov


class VersionConflictError(ChronosError):
    """The record's current ``ov`` is not the one the caller expected.

    ``expected`` is what the caller passed (``None`` for "no record yet"), ``actual`` the
    ``ov`` found on the head (``None`` when the record does not exist).
    """

    def __init__(self, expected: int | None, actual: int | None, *, id: str | None = None) -> None:
        super().__init__(
            f"version conflict on {id!r}: expected ov={expected}, found ov={actual}"
            if id is not None
            else f"version conflict: expected ov={expected}, found ov={actual}"
        )
        self.expected = expected
        self.actual = actual
        self.id = id


class ItemExistsError(VersionConflictError):
    """``create`` was given an id that already has a record."""

    def __init__(self, id: str, actual: int | None) -> None:
        super().__init__(None, actual, id=id)
        self.args = (f"a record with id {id!r} already exists (ov={actual})",)


class ItemDeletedError(ChronosError):
    """The record is logically deleted; only restore can bring it back."""

    def __init__(self, id: str, ov: int) -> None:
        super().__init__(f"record {id!r} is deleted (ov={ov}); restore it before changing it")
        self.id = id
        self.ov = ov


class LockTimeoutError(ChronosError, TimeoutError):
    """Another writer held the record's lease for longer than the configured wait."""

    def __init__(self, id: str, waited_ms: float) -> None:
        super().__init__(f"lease on {id!r} not granted within {waited_ms:.0f} ms")
        self.id = id
        self.waited_ms = waited_ms


class LockLostError(ChronosError):
    """The writer's lease expired and another writer took it over.

    Raised before the version is claimed, so nothing of the write is visible; retrying
    (after re-reading the record) is safe.
    """

    def __init__(self, id: str) -> None:
        super().__init__(f"lease on {id!r} was lost before the write was claimed; nothing written")
        self.id = id


class StorageError(ChronosError, OSError):
    """A backend (MongoDB or the payload store) failed.

    ``retryable`` is true when the same call may succeed later (a timeout, a refused
    connection); ``outcome_unknown`` is true when the write may or may not have been
    committed (the failure happened after the version was claimed and before its
    publication could be confirmed or undone).
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = False,
        outcome_unknown: bool = False,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.outcome_unknown = outcome_unknown


class IntegrityError(ChronosError):
    """Stored data contradicts its metadata (checksum mismatch or missing payload)."""


class RestoreInterruptedError(ChronosError):
    """``restore_collection`` stopped before it examined every record.

    ``report`` (a :class:`~chronos_async.RestoreReport`) lists exactly what was restored,
    deleted or left unchanged before the stop; the cause is chained (``__cause__``).
    Running the same restore again completes it: records already in their target state
    are left alone.
    """

    def __init__(self, message: str, *, report: object) -> None:
        super().__init__(message)
        self.report = report


class QueuedOperationError(ChronosError):
    """A queued write (``chronos.fallback``) has no result to give."""


class DeadLetterError(QueuedOperationError):
    """The queued operation was moved to the dead letters and will not be applied.

    ``reason`` says why (a version conflict, a deleted record, ``max_attempts`` spent);
    ``last_error`` is its last attempt's error. ``retry_dead_letter(op_id)`` queues it
    again once the cause is fixed.
    """

    def __init__(self, op_id: str, reason: str, last_error: str | None = None) -> None:
        super().__init__(f"queued operation {op_id!r} is in the dead letters: {reason}")
        self.op_id = op_id
        self.reason = reason
        self.last_error = last_error


class OperationCancelledError(QueuedOperationError):
    """The queued operation was cancelled before it was applied."""


class OperationPendingError(QueuedOperationError, TimeoutError):
    """``wait`` timed out: the operation is still queued (``state``, ``attempts`` so far)."""

    def __init__(self, op_id: str, state: str, attempts: int) -> None:
        super().__init__(
            f"queued operation {op_id!r} is not applied yet ({state}, {attempts} attempt(s))"
        )
        self.op_id = op_id
        self.state = state
        self.attempts = attempts


class ClosedError(ChronosError, RuntimeError):
    """The :class:`~chronos_async.Chronos` instance is not open (or was closed)."""


class LocalServerError(ChronosError, RuntimeError):
    """A local server could not be found, started or made ready (the message has its log)."""


class ExecutableNotFoundError(LocalServerError, FileNotFoundError):
    """A server executable is neither next to the Python interpreter nor on ``PATH``."""
