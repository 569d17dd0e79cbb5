"""aiohttp integration: one open :class:`~chronos_async.Chronos` per app (a cleanup
context), collections from a request, errors as RFC 9457 problem details.

::

    from aiohttp import web
    from chronos_async.integrations.aiohttp import (
        chronos_context, get_collection, if_match, problem_middleware)

    app = web.Application(middlewares=[problem_middleware])
    app.cleanup_ctx.append(chronos_context(config))    # app[CHRONOS] while running

    async def replace(request: web.Request) -> web.Response:
        users = get_collection(request, "users", db="app")
        r = await users.update(request.match_info["id"], await request.json(),
                               expected_ov=if_match(request))
        ...

Status mapping and header rules: :mod:`chronos_async.integrations._http`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from http import HTTPStatus
from typing import Any, TypeVar, overload

import orjson
import pydantic
from aiohttp import web

from chronos_async._client import Chronos
from chronos_async._collection import Collection
from chronos_async._config import ChronosConfig
from chronos_async._errors import ValidationError
from chronos_async.integrations._http import (
    PROBLEM_JSON,
    ProblemDetails,
    parse_if_match,
    problem_for,
    validate_idempotency_key,
)

__all__ = [
    "CHRONOS",
    "chronos_context",
    "get_chronos",
    "get_collection",
    "idempotency_key",
    "if_match",
    "json_body",
    "problem_middleware",
    "problem_response",
]

M = TypeVar("M", bound=pydantic.BaseModel)

#: Where :func:`chronos_context` keeps the open :class:`Chronos` (``app[CHRONOS]``).
CHRONOS = web.AppKey("chronos_async.chronos", Chronos)

_log = logging.getLogger("chronos_async.integrations")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def chronos_context(
    config: ChronosConfig,
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup context for ``app.cleanup_ctx``: opens one :class:`Chronos` at start-up,
    stores it as ``app[CHRONOS]``, and closes it at shutdown."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        async with Chronos(config) as chronos:
            app[CHRONOS] = chronos
            yield

    return context


def get_chronos(request: web.Request) -> Chronos:
    """The app's open :class:`Chronos` (set by :func:`chronos_context`)."""
    return request.config_dict[CHRONOS]


@overload
def get_collection(
    request: web.Request, name: str, *, db: str, tenant: str | None = None, model: None = None
) -> Collection[dict[str, Any]]: ...


@overload
def get_collection(
    request: web.Request, name: str, *, db: str, tenant: str | None = None, model: type[M]
) -> Collection[M]: ...


def get_collection(
    request: web.Request,
    name: str,
    *,
    db: str,
    tenant: str | None = None,
    model: type[pydantic.BaseModel] | None = None,
) -> Collection[Any]:
    """The handle of collection ``name`` on the app's :class:`Chronos` (typed with
    ``model``)."""
    return get_chronos(request).collection(name, db=db, tenant=tenant, model=model)


def if_match(request: web.Request, *, required: bool = False) -> int | None:
    """The request's ``If-Match`` as ``expected_ov`` (``None`` when absent or ``*``); a
    malformed one raises :class:`~chronos_async.integrations.HeaderError` (400), a missing
    one with ``required`` answers 428."""
    return parse_if_match(request.headers.get("If-Match"), required=required)


def idempotency_key(request: web.Request) -> str | None:
    """The request's ``Idempotency-Key`` header as ``idempotency_key`` (or ``None``)."""
    return validate_idempotency_key(request.headers.get("Idempotency-Key"))


async def json_body(request: web.Request) -> Any:
    """The request body as JSON, or :class:`ValidationError` (422) when it is not JSON.

    Parsed with the standard library (orjson would turn an integer beyond 64 bits into
    a float, silently losing digits; here it stays an int and the codec refuses it), with
    ``NaN`` and ``Infinity`` refused: they are not JSON.
    """
    raw = await request.read()
    try:
        return json.loads(raw, parse_constant=_not_json)
    except (ValueError, RecursionError):
        raise ValidationError("the request body is not valid JSON") from None


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def problem_response(problem: ProblemDetails) -> web.Response:
    """``problem`` as an ``application/problem+json`` response (with its headers)."""
    return web.Response(
        body=orjson.dumps(problem.body()),
        status=problem.status,
        headers={**problem.headers, "Content-Type": PROBLEM_JSON},
    )


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer errors with RFC 9457 problem details (``application/problem+json``).

    Every :class:`~chronos_async.ChronosError` is mapped by
    :func:`~chronos_async.integrations._http.problem_for` (404, 409/412, 410, 422,
    503...); aiohttp's own HTTP errors (404 for an unknown route, 405...) keep their
    status; any other exception becomes a generic 500 (and is logged).
    """
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        phrase = HTTPStatus(exc.status).phrase
        headers = {k: v for k, v in exc.headers.items() if k.lower() in {"allow", "retry-after"}}
        return problem_response(
            ProblemDetails(exc.status, phrase, exc.reason or phrase, "about:blank", headers=headers)
        )
    except Exception as exc:
        problem = problem_for(exc, if_match="If-Match" in request.headers)
        if problem.status >= 500 and not problem.headers:
            _log.error("%s %s failed", request.method, request.path, exc_info=exc)
        return problem_response(problem)
