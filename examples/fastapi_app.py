"""A small versioned "users" service on FastAPI (``pip install fastapi uvicorn``).

    CHRONOS_CONFIG=chronos.json uvicorn --factory examples.fastapi_app:app_from_env

Every record response carries ``ETag: "<ov>"``; ``PUT`` needs ``If-Match`` with it
(428 without, 412 when stale); ``PATCH``, ``DELETE`` and restore honour it when given.
``Idempotency-Key`` makes a retried write return the first result. Errors are RFC 9457
problem details (``application/problem+json``). The application (not the library)
decides where its config file lives.

No ``from __future__ import annotations`` here: FastAPI reads the route signatures at run
time, and ``Users`` is local to :func:`create_app`.
"""

import os
from datetime import datetime
from typing import Annotated, Any, Self

from fastapi import Depends, FastAPI, Query, Response
from pydantic import BaseModel, Field, model_validator

from chronos_async import (
    ChronosConfig,
    Collection,
    Item,
    ItemDeletedError,
    NotFoundError,
    VersionInfo,
    WriteResult,
)
from chronos_async.integrations import format_etag, parse_at
from chronos_async.integrations.fastapi import (
    IdempotencyKey,
    IfMatch,
    IfMatchRequired,
    chronos_lifespan,
    collection_dependency,
    install_error_handlers,
    problem_responses,
)

Data = dict[str, Any]


class Record(BaseModel):
    """One version of a user record."""

    id: str
    ov: int
    cv: int
    data: Data
    created_at: datetime
    updated_at: datetime
    deleted: bool
    actor: str | None
    reason: str | None

    @classmethod
    def of(cls, item: Item[Data]) -> Self:
        return cls(
            id=item.id,
            ov=item.ov,
            cv=item.cv,
            data=item.data,
            created_at=item.created_at,
            updated_at=item.updated_at,
            deleted=item.deleted,
            actor=item.actor,
            reason=item.reason,
        )


class Written(BaseModel):
    """The outcome of a write: the record's new version."""

    id: str
    ov: int
    cv: int
    at: datetime
    changed: bool

    @classmethod
    def of(cls, r: WriteResult) -> Self:
        return cls(id=r.id, ov=r.ov, cv=r.cv, at=r.at, changed=r.changed)


class Version(BaseModel):
    """One entry of a record's history (no data)."""

    ov: int
    cv: int
    at: datetime
    op: str
    actor: str | None
    reason: str | None
    deleted: bool
    function_id: str | None
    restored_from: int | None

    @classmethod
    def of(cls, v: VersionInfo) -> Self:
        return cls(
            ov=v.ov,
            cv=v.cv,
            at=v.at,
            op=v.op,
            actor=v.actor,
            reason=v.reason,
            deleted=v.deleted,
            function_id=v.function_id,
            restored_from=v.restored_from,
        )


class RecordPage(BaseModel):
    """A page of current records; pass ``next_cursor`` as ``?cursor=`` for the next one."""

    items: list[Record]
    next_cursor: str | None


class RestoreRequest(BaseModel):
    """Which earlier state to restore: exactly one of ``ov`` and ``at``."""

    ov: int | None = Field(default=None, ge=0)
    at: datetime | None = None

    @model_validator(mode="after")
    def _one_of(self) -> Self:
        if (self.ov is None) == (self.at is None):
            raise ValueError("give exactly one of ov and at")
        return self


OvQuery = Annotated[int | None, Query(ge=0, le=2**63 - 1, description="read this version")]
AtQuery = Annotated[
    str | None, Query(description="read the record as it was then (ISO-8601, e.g. 2026-03-01Z)")
]


def create_app(config: ChronosConfig, *, db: str = "myapp") -> FastAPI:
    """The service: users stored in collection ``users`` of database ``db``."""
    app = FastAPI(title="users", lifespan=chronos_lifespan(config))
    install_error_handlers(app)
    Users = Annotated[Collection[Data], Depends(collection_dependency("users", db=db))]

    def tagged(response: Response, r: WriteResult) -> Written:
        response.headers["ETag"] = format_etag(r.ov)
        return Written.of(r)

    @app.post(
        "/users", status_code=201, response_model=Written, responses=problem_responses(409, 422)
    )
    async def create_user(
        body: Data, users: Users, response: Response, key: IdempotencyKey
    ) -> Written:
        """Create a user; 201 with ``Location`` and ``ETag``."""
        r = await users.create(body, actor="api", reason="POST /users", idempotency_key=key)
        response.headers["Location"] = f"/users/{r.id}"
        return tagged(response, r)

    @app.get("/users", response_model=RecordPage, responses=problem_responses(422))
    async def list_users(
        users: Users,
        status: str | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
        cursor: str | None = None,
    ) -> RecordPage:
        """Current users, newest update first, optionally by ``status``."""
        page = await users.list_by_meta(
            {"status": status} if status is not None else None, limit=limit, after=cursor
        )
        return RecordPage(items=[Record.of(i) for i in page.items], next_cursor=page.next_cursor)

    @app.get(
        "/users/{user_id}", response_model=Record, responses=problem_responses(400, 404, 410, 422)
    )
    async def read_user(
        user_id: str, users: Users, response: Response, at: AtQuery = None, ov: OvQuery = None
    ) -> Record:
        """The current version (``ETag``), version ``?ov=``, or the state at ``?at=``."""
        if at is not None:
            item = await users.get_as_of(user_id, parse_at(at))
        elif ov is not None:
            item = await users.get_version(user_id, ov)
        else:
            item = await users.get_latest(user_id, include_deleted=True)
            if item is not None and item.deleted:
                raise ItemDeletedError(user_id, item.ov)
        if item is None:
            raise NotFoundError(f"no user {user_id!r} (at that version or time)", id=user_id)
        response.headers["ETag"] = format_etag(item.ov)
        return Record.of(item)

    @app.put(
        "/users/{user_id}",
        response_model=Written,
        responses=problem_responses(400, 404, 409, 410, 412, 422, 428, 503),
    )
    async def replace_user(
        user_id: str,
        body: Data,
        users: Users,
        response: Response,
        ov: IfMatchRequired,
        key: IdempotencyKey,
    ) -> Written:
        """Replace the data (``If-Match`` required: the ETag you read, or ``*``)."""
        r = await users.update(
            user_id, body, expected_ov=ov, actor="api", reason="PUT", idempotency_key=key
        )
        return tagged(response, r)

    @app.patch(
        "/users/{user_id}",
        response_model=Written,
        responses=problem_responses(400, 404, 410, 412, 422, 503),
    )
    async def enrich_user(
        user_id: str, body: Data, users: Users, response: Response, ov: IfMatch, key: IdempotencyKey
    ) -> Written:
        """Deep-merge the body into the data (arrays unioned; see ``Collection.enrich``)."""
        r = await users.enrich(
            user_id, body, expected_ov=ov, actor="api", reason="PATCH", idempotency_key=key
        )
        return tagged(response, r)

    @app.delete(
        "/users/{user_id}",
        response_model=Written,
        responses=problem_responses(400, 404, 410, 412, 503),
    )
    async def delete_user(
        user_id: str, users: Users, response: Response, ov: IfMatch, key: IdempotencyKey
    ) -> Written:
        """Delete logically (history kept; restore brings it back)."""
        r = await users.delete(
            user_id, expected_ov=ov, actor="api", reason="DELETE", idempotency_key=key
        )
        return tagged(response, r)

    @app.get(
        "/users/{user_id}/history", response_model=list[Version], responses=problem_responses(404)
    )
    async def user_history(user_id: str, users: Users) -> list[Version]:
        """Every version, newest first."""
        versions = [Version.of(v) async for v in users.history(user_id)]
        if not versions:
            raise NotFoundError(f"no user {user_id!r}", id=user_id)
        return versions

    @app.get(
        "/users/{user_id}/diff",
        response_model=list[dict[str, Any]],
        responses=problem_responses(404, 422),
    )
    async def user_diff(
        user_id: str,
        users: Users,
        from_ov: Annotated[int, Query(alias="from", ge=0, le=2**63 - 1)],
        to_ov: Annotated[int, Query(alias="to", ge=0, le=2**63 - 1)],
    ) -> list[dict[str, Any]]:
        """RFC 6902 operations from version ``?from=`` to ``?to=``."""
        return await users.diff(user_id, from_ov, to_ov)

    @app.post(
        "/users/{user_id}/restore",
        response_model=Written,
        responses=problem_responses(400, 404, 409, 412, 422, 503),
    )
    async def restore_user(
        user_id: str,
        body: RestoreRequest,
        users: Users,
        response: Response,
        ov: IfMatch,
        key: IdempotencyKey,
    ) -> Written:
        """Append a version equal to version ``ov`` (or to the state at ``at``)."""
        r = await users.restore_object(
            user_id,
            ov=body.ov,
            at=body.at,
            expected_ov=ov,
            actor="api",
            reason="restore",
            idempotency_key=key,
        )
        return tagged(response, r)

    return app


def app_from_env() -> FastAPI:
    """The app on the config file named by ``$CHRONOS_CONFIG`` (for ``uvicorn --factory``)."""
    return create_app(ChronosConfig.from_file(os.environ.get("CHRONOS_CONFIG", "chronos.json")))
