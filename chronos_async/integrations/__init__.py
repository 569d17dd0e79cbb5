"""Web-framework integrations: FastAPI and aiohttp.

Each framework has its own module, which is the only place that imports it, so
``import chronos_async`` (and this package) never pulls in a web framework::

    from chronos_async.integrations.fastapi import chronos_lifespan, collection_dependency
    from chronos_async.integrations.aiohttp import chronos_context, problem_middleware

Both share :mod:`chronos_async.integrations._http`, framework-free logic that turns a
:class:`~chronos_async.ChronosError` into an HTTP status and an RFC 9457 problem-details
body, and that formats and parses the ETag / ``If-Match`` headers of RFC 9110
conditional requests (``ETag: "<ov>"``).
"""

from chronos_async.integrations._http import (
    HeaderError,
    ProblemDetails,
    format_etag,
    parse_at,
    parse_if_match,
    parse_ov,
    problem_for,
    validate_idempotency_key,
)

__all__ = [
    "HeaderError",
    "ProblemDetails",
    "format_etag",
    "parse_at",
    "parse_if_match",
    "parse_ov",
    "problem_for",
    "validate_idempotency_key",
]
