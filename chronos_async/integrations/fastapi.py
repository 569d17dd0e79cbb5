"""FastAPI integration: one open :class:`~chronos_async.Chronos` per app, collections as
dependencies, errors as RFC 9457 problem details (``pip install fastapi``).

::

    from typing import Annotated
    from fastapi import Depends, FastAPI
    from chronos_async import Collection
    from chronos_async.integrations.fastapi import (
        IfMatch, chronos_lifespan, collection_dependency, install_error_handlers)

    app = FastAPI(lifespan=chronos_lifespan(config))   # app.state.chronos while running
    install_error_handlers(app)                        # ChronosError -> problem+json
    Users = Annotated[Collection[dict[str, Any]], Depends(collection_dependency("users", db="app"))]

    @app.put("/users/{user_id}")
    async def replace(user_id: str, body: dict[str, Any], users: Users, ov: IfMatch): ...

Status mapping and header rules: :mod:`chronos_async.integrations._http`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, TypeVar, overload

import pydantic
from fastapi import Depends, FastAPI, Header, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from chronos_async._client import Chronos
from chronos_async._collection import Collection
from chronos_async._config import ChronosConfig
from chronos_async._errors import ChronosError, ClosedError
from chronos_async.integrations._http import (
    PROBLEM_JSON,
    ProblemDetails,
    parse_if_match,
    problem_for,
    validate_idempotency_key,
)

__all__ = [
    "IdempotencyKey",
    "IfMatch",
    "IfMatchRequired",
    "ProblemModel",
    "chronos_lifespan",
    "collection_dependency",
    "get_chronos",
    "if_match",
    "if_match_required",
    "idempotency_key",
    "install_error_handlers",
    "problem_response",
    "problem_responses",
]

M = TypeVar("M", bound=pydantic.BaseModel)

_log = logging.getLogger("chronos_async.integrations")


def chronos_lifespan(
    config: ChronosConfig,
) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]:
    """A lifespan for ``FastAPI(lifespan=...)``: opens one :class:`Chronos` at start-up,
    stores it on ``app.state.chronos``, and closes it at shutdown."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with Chronos(config) as chronos:
            app.state.chronos = chronos
            try:
                yield
            finally:
                del app.state.chronos

    return lifespan


def get_chronos(request: Request) -> Chronos:
    """The app's open :class:`Chronos` (a dependency); :class:`ClosedError` (500) when the
    lifespan did not run."""
    chronos = getattr(request.app.state, "chronos", None)
    if not isinstance(chronos, Chronos):
        raise ClosedError("no open Chronos on app.state.chronos (is chronos_lifespan installed?)")
    return chronos


@overload
def collection_dependency(
    name: str, *, db: str, tenant: str | None = None, model: None = None
) -> Callable[[Request], Collection[dict[str, Any]]]: ...


@overload
def collection_dependency(
    name: str, *, db: str, tenant: str | None = None, model: type[M]
) -> Callable[[Request], Collection[M]]: ...


def collection_dependency(
    name: str,
    *,
    db: str,
    tenant: str | None = None,
    model: type[pydantic.BaseModel] | None = None,
) -> Callable[[Request], Collection[Any]]:
    """A dependency giving the handle of collection ``name`` (typed with ``model``)::

    users_of = collection_dependency("users", db="app", model=User)
    Users = Annotated[Collection[User], Depends(users_of)]
    """

    def dependency(request: Request) -> Collection[Any]:
        return get_chronos(request).collection(name, db=db, tenant=tenant, model=model)

    dependency.__name__ = f"collection_{name}"
    return dependency


def if_match(
    if_match: Annotated[str | None, Header(description='"<ov>": write only that version')] = None,
) -> int | None:
    """A dependency: the ``If-Match`` header as ``expected_ov`` (``None`` when absent or
    ``*``); a malformed one answers 400."""
    return parse_if_match(if_match)


def if_match_required(
    if_match: Annotated[
        str | None, Header(description='"<ov>" (the ETag you read), or * to overwrite')
    ] = None,
) -> int | None:
    """Like :func:`if_match`, but a missing header answers 428 Precondition Required."""
    return parse_if_match(if_match, required=True)


def idempotency_key(
    idempotency_key: Annotated[
        str | None, Header(description="a retried request with the same key is not redone")
    ] = None,
) -> str | None:
    """A dependency: the ``Idempotency-Key`` header as ``idempotency_key`` (or ``None``)."""
    return validate_idempotency_key(idempotency_key)


#: ``expected_ov`` from an optional ``If-Match`` header.
IfMatch = Annotated[int | None, Depends(if_match)]
#: ``expected_ov`` from a required ``If-Match`` header (428 when missing).
IfMatchRequired = Annotated[int | None, Depends(if_match_required)]
#: ``idempotency_key`` from the ``Idempotency-Key`` header.
IdempotencyKey = Annotated[str | None, Depends(idempotency_key)]


class ProblemModel(pydantic.BaseModel):
    """The RFC 9457 body of an error response (for OpenAPI ``responses=``)."""

    model_config = pydantic.ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str


_DESCRIPTIONS = {
    400: "Malformed header or parameter",
    404: "No such record or version",
    409: "Version conflict, or the id is taken",
    410: "The record is deleted",
    412: "If-Match does not name the current version",
    422: "Invalid payload or parameter",
    428: "If-Match is required",
    503: "Busy or temporarily unavailable; retry after Retry-After seconds",
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` documenting problem-details answers for ``statuses``::

    @app.get("/users/{id}", responses=problem_responses(404, 410))
    """
    return {
        status: {
            "model": ProblemModel,
            "description": _DESCRIPTIONS.get(status, "Error"),
            "content": {PROBLEM_JSON: {}},
        }
        for status in statuses
    }


def problem_response(problem: ProblemDetails) -> JSONResponse:
    """``problem`` as an ``application/problem+json`` response (with its headers)."""
    return JSONResponse(
        problem.body(), status_code=problem.status, headers=problem.headers, media_type=PROBLEM_JSON
    )


async def _chronos_error(request: Request, exc: Exception) -> Response:
    problem = problem_for(exc, if_match="if-match" in request.headers)
    if problem.status >= 500 and not problem.headers:
        _log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return problem_response(problem)


async def _request_validation(request: Request, exc: Exception) -> Response:
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    # loc/msg/type only: pydantic's "input" would echo the payload back.
    kept = [{k: e[k] for k in ("loc", "msg", "type") if k in e} for e in errors]
    detail = "; ".join(
        f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}" for e in kept
    )
    problem = ProblemDetails(
        422,
        "Unprocessable Content",
        detail or "the request is not valid",
        "urn:chronos-async:problem:validation",
        extra={"errors": kept},
    )
    return problem_response(problem)


async def _http_exception(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, StarletteHTTPException):  # pragma: no cover - registered for it
        return problem_response(problem_for(exc))
    status = exc.status_code
    phrase = _phrase(status)
    detail = exc.detail if isinstance(exc.detail, str) and status < 500 else phrase
    problem = ProblemDetails(status, phrase, detail, "about:blank", headers=dict(exc.headers or {}))
    return problem_response(problem)


async def _unexpected(request: Request, exc: Exception) -> Response:
    # Not logged here: Starlette's ServerErrorMiddleware re-raises it to the server.
    return problem_response(problem_for(exc))


def _phrase(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def install_error_handlers(app: FastAPI) -> None:
    """Answer errors with RFC 9457 problem details (``application/problem+json``).

    Every :class:`ChronosError` is mapped by
    :func:`~chronos_async.integrations._http.problem_for` (404, 409/412, 410, 422, 503...),
    request validation errors become 422 (without echoing the input), ``HTTPException``
    keeps its status, and any other exception a generic 500.
    """
    app.add_exception_handler(ChronosError, _chronos_error)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(Exception, _unexpected)
