"""HTTP semantics shared by the web integrations (pure: no framework, no I/O).

Errors become RFC 9457 problem details. :func:`problem_for` maps an exception to a
:class:`ProblemDetails` (status, ``type``, ``title``, ``detail``, extra headers); the
framework modules only serialise it as ``application/problem+json``::

    HeaderError (malformed If-Match, ?at=, ?ov=...)   400 (or its own status, e.g. 428)
    ValidationError (incl. ModelValidationError)      422
    NotFoundError                                     404
    ItemExistsError                                   409
    VersionConflictError                              409, or 412 when the request
                                                      carried If-Match (RFC 9110 13.1.1)
    ItemDeletedError                                  410
    LockTimeoutError, LockLostError,                  503 with Retry-After
    StorageError with retryable=True
    anything else (other ChronosError, any bug)       500, generic body

A ``detail`` never carries internals: for 4xx it is the library's message, which names
ids and versions but never payload contents, URIs or credentials; for 5xx and 503 it is a
fixed sentence.

Conditional requests: a record's representation carries ``ETag: "<ov>"`` (a strong
validator: an ``ov`` names exactly one version of the record), and a write's
``If-Match: "<ov>"`` becomes ``expected_ov``. :func:`parse_if_match` accepts one strong
ETag or ``*`` (no version check); anything else is a :class:`HeaderError` (400), because
silently ignoring a precondition the client asked for would risk a lost update.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from chronos_async._errors import (
    ChronosError,
    ItemDeletedError,
    ItemExistsError,
    LockLostError,
    LockTimeoutError,
    NotFoundError,
    StorageError,
    ValidationError,
    VersionConflictError,
)

__all__ = [
    "PROBLEM_JSON",
    "HeaderError",
    "ProblemDetails",
    "format_etag",
    "parse_at",
    "parse_if_match",
    "parse_ov",
    "problem_for",
    "validate_idempotency_key",
]

#: The media type of a problem-details body (RFC 9457).
PROBLEM_JSON: Final = "application/problem+json"

#: Prefix of the ``type`` URIs of our problems (a URN: it identifies, it is not fetched).
_TYPE: Final = "urn:chronos-async:problem:"

#: Seconds a client should wait before retrying a 503.
RETRY_AFTER_SECONDS: Final = 1

#: Largest ``ov`` accepted in a header or query (the codec's int64 bound).
_OV_MAX: Final = 2**63 - 1

_STRONG_ETAG = re.compile(r'"([0-9]{1,19})"')
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")


class HeaderError(ValidationError):
    """A request header or query parameter is malformed (an If-Match that is not one
    strong ETag, an ``?at=`` that is not ISO-8601...).

    ``status`` is the HTTP status to answer with: 400 by default, 428 for a missing
    required precondition. ``field`` names the header or parameter.
    """

    def __init__(self, message: str, *, field: str, status: int = 400) -> None:
        super().__init__(message)
        self.field = field
        self.status = status


@dataclass(frozen=True, slots=True)
class ProblemDetails:
    """An RFC 9457 problem: what a handler answers for an error.

    ``body()`` is the JSON object (``type``, ``title``, ``status``, ``detail`` and the
    ``extra`` members); ``headers`` are extra response headers (``Retry-After``).
    """

    status: int
    title: str
    detail: str
    type: str = "about:blank"
    extra: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        """The problem as a JSON object (``application/problem+json``)."""
        return {
            "type": self.type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            **self.extra,
        }


def _problem(status: int, slug: str, title: str, detail: str, **extra: Any) -> ProblemDetails:
    return ProblemDetails(status, title, detail, _TYPE + slug, dict(extra))


def _unavailable(detail: str) -> ProblemDetails:
    return ProblemDetails(
        503,
        "Service Unavailable",
        detail,
        _TYPE + "unavailable",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


#: The body of every 500: nothing about the cause leaves the server.
INTERNAL: Final = ProblemDetails(
    500, "Internal Server Error", "the server could not complete the request", "about:blank"
)


def problem_for(exc: BaseException, *, if_match: bool = False) -> ProblemDetails:
    """The problem to answer for ``exc``.

    ``if_match`` says whether the request carried an ``If-Match`` header: a version
    conflict is then a failed precondition (412) rather than a conflict (409).

    >>> problem_for(NotFoundError("no record 'x'", id="x")).status
    404
    >>> problem_for(VersionConflictError(1, 2, id="x"), if_match=True).status
    412
    """
    if not isinstance(exc, ChronosError):
        return INTERNAL
    if isinstance(exc, HeaderError):
        slug = "precondition-required" if exc.status == 428 else "bad-request"
        title = "Precondition Required" if exc.status == 428 else "Bad Request"
        return _problem(exc.status, slug, title, str(exc), field=exc.field)
    if isinstance(exc, ValidationError):
        return _problem(422, "validation", "Unprocessable Content", str(exc))
    if isinstance(exc, NotFoundError):
        return _problem(404, "not-found", "Not Found", str(exc))
    if isinstance(exc, ItemExistsError):
        return _problem(409, "item-exists", "Conflict", str(exc), current_ov=exc.actual)
    if isinstance(exc, VersionConflictError):
        if if_match:
            return _problem(
                412, "precondition-failed", "Precondition Failed", str(exc), current_ov=exc.actual
            )
        return _problem(409, "version-conflict", "Conflict", str(exc), current_ov=exc.actual)
    if isinstance(exc, ItemDeletedError):
        return _problem(410, "deleted", "Gone", str(exc), current_ov=exc.ov)
    if isinstance(exc, LockTimeoutError | LockLostError):
        return _unavailable("the record is busy with another write; retry shortly")
    if isinstance(exc, StorageError) and exc.retryable:
        return _unavailable("storage is temporarily unavailable; retry shortly")
    return INTERNAL


# -- ETags and If-Match ----------------------------------------------------------------


def format_etag(ov: int) -> str:
    """The strong ETag of version ``ov`` of a record: ``'"3"'`` for ``ov=3``."""
    if ov < 0:
        raise ValueError(f"ov must be >= 0, not {ov}")
    return f'"{ov}"'


def parse_if_match(value: str | None, *, required: bool = False) -> int | None:
    """The ``expected_ov`` an ``If-Match`` header asks for.

    ``None`` when the header is absent or ``*`` (write without a version check); the
    ``ov`` of a single strong ETag (``"3"``) otherwise. A weak ETag (``W/"3"``), a list
    of ETags, or anything else raises :class:`HeaderError` (400). With ``required`` a
    missing header raises :class:`HeaderError` with status 428 (RFC 6585).

    >>> parse_if_match('"3"'), parse_if_match(None), parse_if_match("*")
    (3, None, None)
    """
    if value is None:
        if required:
            raise HeaderError(
                'this write needs If-Match: "<ov>" (the ETag you read)',
                field="If-Match",
                status=428,
            )
        return None
    text = value.strip()
    if text == "*":
        return None
    match = _STRONG_ETAG.fullmatch(text)
    if match is None or int(match.group(1)) > _OV_MAX:
        raise HeaderError(
            'If-Match must be one strong ETag of the form "<ov>" (or *)', field="If-Match"
        )
    return int(match.group(1))


def parse_ov(value: str, *, field: str = "ov") -> int:
    """A version number from a query parameter: decimal digits, ``0 <= ov < 2**63``."""
    text = value.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 19 or int(text) > _OV_MAX:
        raise HeaderError(f"{field} must be a version number (an integer >= 0)", field=field)
    return int(text)


def parse_at(value: str, *, field: str = "at") -> datetime:
    """A point in time from a query parameter: ISO-8601 with an offset (``Z`` or ``+hh:mm``).

    A time without an offset is refused (400), as the library refuses naive datetimes:
    which zone the client meant cannot be known.
    """
    text = value.strip()
    try:
        if len(text) > 64:
            raise ValueError(text)
        at = datetime.fromisoformat(text)
    except ValueError:
        raise HeaderError(
            f"{field} must be an ISO-8601 time such as 2026-03-01T00:00:00Z", field=field
        ) from None
    if at.tzinfo is None:
        raise HeaderError(
            f"{field} needs a UTC offset, such as 2026-03-01T00:00:00Z or "
            "2026-03-01T01:00:00+01:00",
            field=field,
        )
    return at


def validate_idempotency_key(value: str | None) -> str | None:
    """The ``Idempotency-Key`` header as an ``idempotency_key``: 1-255 visible ASCII
    characters, or ``None`` when absent."""
    if value is None:
        return None
    if _IDEMPOTENCY_KEY.fullmatch(value) is None:
        raise HeaderError(
            "Idempotency-Key must be 1-255 visible ASCII characters", field="Idempotency-Key"
        )
    return value
