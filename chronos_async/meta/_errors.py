"""Translation of pymongo exceptions into :class:`~chronos_async.StorageError`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pymongo.errors import (
    AutoReconnect,
    ConnectionFailure,
    DuplicateKeyError,
    ExecutionTimeout,
    NetworkTimeout,
    PyMongoError,
    ServerSelectionTimeoutError,
    WTimeoutError,
)

from chronos_async._errors import StorageError

__all__ = ["DuplicateKeyError", "is_retryable", "mongo_errors"]

_RETRYABLE = (
    AutoReconnect,
    ConnectionFailure,
    NetworkTimeout,
    ServerSelectionTimeoutError,
    ExecutionTimeout,
    WTimeoutError,
)


def is_retryable(exc: PyMongoError) -> bool:
    """True when the same operation may succeed later (network, election, timeout)."""
    if isinstance(exc, _RETRYABLE):
        return True
    return exc.has_error_label("RetryableWriteError") or exc.has_error_label(
        "TransientTransactionError"
    )


@contextmanager
def mongo_errors(what: str) -> Iterator[None]:
    """Re-raise any pymongo error (other than a duplicate key) as ``StorageError``.

    ``what`` says which operation failed; server addresses and credentials are never
    part of the message.
    """
    try:
        yield
    except DuplicateKeyError:
        raise
    except PyMongoError as exc:
        kind = type(exc).__name__
        raise StorageError(f"MongoDB {what} failed ({kind})", retryable=is_retryable(exc)) from exc
