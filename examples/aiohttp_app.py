"""A small versioned "users" service on aiohttp, Chronos opened in a cleanup context.

    python examples/aiohttp_app.py chronos.json [port]

The same API as ``examples/fastapi_app.py``: ``ETag: "<ov>"`` on record responses,
``PUT`` needs ``If-Match`` (428 without, 412 when stale), ``Idempotency-Key`` makes a
retried write return the first result, errors are RFC 9457 problem details.
"""

from __future__ import annotations

import sys
from typing import Any

from aiohttp import web

from chronos_async import (
    ChronosConfig,
    Collection,
    Item,
    ItemDeletedError,
    NotFoundError,
    ValidationError,
    VersionInfo,
    WriteResult,
)
from chronos_async.integrations import format_etag, parse_at, parse_ov
from chronos_async.integrations.aiohttp import (
    chronos_context,
    get_collection,
    idempotency_key,
    if_match,
    json_body,
    problem_middleware,
)

Data = dict[str, Any]
#: The database the service's collection lives in (an app key: tests use their own).
DB = web.AppKey("db", str)


def _record(item: Item[Data]) -> Data:
    return {
        "id": item.id,
        "ov": item.ov,
        "cv": item.cv,
        "data": item.data,
        "created_at": item.created_at.isoformat(),
        "updated_at": item.updated_at.isoformat(),
        "deleted": item.deleted,
        "actor": item.actor,
        "reason": item.reason,
    }


def _written(r: WriteResult, *, status: int = 200) -> web.Response:
    body = {"id": r.id, "ov": r.ov, "cv": r.cv, "at": r.at.isoformat(), "changed": r.changed}
    return web.json_response(body, status=status, headers={"ETag": format_etag(r.ov)})


def _version(v: VersionInfo) -> Data:
    return {
        "ov": v.ov,
        "cv": v.cv,
        "at": v.at.isoformat(),
        "op": v.op,
        "actor": v.actor,
        "reason": v.reason,
        "deleted": v.deleted,
        "function_id": v.function_id,
        "restored_from": v.restored_from,
    }


def _users(request: web.Request) -> Collection[Data]:
    return get_collection(request, "users", db=request.app[DB])


async def _object(request: web.Request) -> Data:
    body = await json_body(request)
    if not isinstance(body, dict):
        raise ValidationError("the request body must be a JSON object")
    return body


async def create_user(request: web.Request) -> web.Response:
    """POST /users: 201 with Location and ETag."""
    r = await _users(request).create(
        await _object(request), actor="api", reason="POST", idempotency_key=idempotency_key(request)
    )
    response = _written(r, status=201)
    response.headers["Location"] = f"/users/{r.id}"
    return response


async def list_users(request: web.Request) -> web.Response:
    """GET /users?status=&limit=&cursor=: a page of current users."""
    status = request.query.get("status")
    limit = parse_ov(request.query.get("limit", "50"), field="limit")
    page = await _users(request).list_by_meta(
        {"status": status} if status is not None else None,
        limit=limit,
        after=request.query.get("cursor"),
    )
    return web.json_response(
        {"items": [_record(i) for i in page.items], "next_cursor": page.next_cursor}
    )


async def read_user(request: web.Request) -> web.Response:
    """GET /users/{id}[?ov=|?at=]: a version, with its ETag; 410 once deleted."""
    users, uid = _users(request), request.match_info["id"]
    if "at" in request.query:
        item = await users.get_as_of(uid, parse_at(request.query["at"]))
    elif "ov" in request.query:
        item = await users.get_version(uid, parse_ov(request.query["ov"]))
    else:
        item = await users.get_latest(uid, include_deleted=True)
        if item is not None and item.deleted:
            raise ItemDeletedError(uid, item.ov)
    if item is None:
        raise NotFoundError(f"no user {uid!r} (at that version or time)", id=uid)
    return web.json_response(_record(item), headers={"ETag": format_etag(item.ov)})


async def replace_user(request: web.Request) -> web.Response:
    """PUT /users/{id} with If-Match (required)."""
    expected = if_match(request, required=True)
    r = await _users(request).update(
        request.match_info["id"],
        await _object(request),
        expected_ov=expected,
        actor="api",
        reason="PUT",
        idempotency_key=idempotency_key(request),
    )
    return _written(r)


async def enrich_user(request: web.Request) -> web.Response:
    """PATCH /users/{id}: deep-merge the body (If-Match optional)."""
    r = await _users(request).enrich(
        request.match_info["id"],
        await _object(request),
        expected_ov=if_match(request),
        actor="api",
        reason="PATCH",
        idempotency_key=idempotency_key(request),
    )
    return _written(r)


async def delete_user(request: web.Request) -> web.Response:
    """DELETE /users/{id}: a logical delete (If-Match optional)."""
    r = await _users(request).delete(
        request.match_info["id"],
        expected_ov=if_match(request),
        actor="api",
        reason="DELETE",
        idempotency_key=idempotency_key(request),
    )
    return _written(r)


async def user_history(request: web.Request) -> web.Response:
    """GET /users/{id}/history: every version, newest first; 404 for an unknown id."""
    uid = request.match_info["id"]
    versions = [_version(v) async for v in _users(request).history(uid)]
    if not versions:
        raise NotFoundError(f"no user {uid!r}", id=uid)
    return web.json_response(versions)


async def user_diff(request: web.Request) -> web.Response:
    """GET /users/{id}/diff?from=&to=: RFC 6902 operations between two versions."""
    from_ov = parse_ov(request.query.get("from", ""), field="from")
    to_ov = parse_ov(request.query.get("to", ""), field="to")
    return web.json_response(await _users(request).diff(request.match_info["id"], from_ov, to_ov))


async def restore_user(request: web.Request) -> web.Response:
    """POST /users/{id}/restore with {"ov": n} or {"at": "..."}."""
    body = await _object(request)
    if set(body) not in ({"ov"}, {"at"}):
        raise ValidationError('give exactly one of "ov" and "at"')
    ov = parse_ov(str(body["ov"])) if "ov" in body else None
    at = parse_at(str(body["at"])) if "at" in body else None
    r = await _users(request).restore_object(
        request.match_info["id"],
        ov=ov,
        at=at,
        expected_ov=if_match(request),
        actor="api",
        reason="restore",
        idempotency_key=idempotency_key(request),
    )
    return _written(r)


def make_app(config: ChronosConfig, *, db: str = "myapp") -> web.Application:
    """The application: one Chronos for its whole life, closed on shutdown."""
    app = web.Application(middlewares=[problem_middleware])
    app[DB] = db
    app.cleanup_ctx.append(chronos_context(config))
    app.router.add_post("/users", create_user)
    app.router.add_get("/users", list_users)
    app.router.add_get("/users/{id}", read_user)
    app.router.add_put("/users/{id}", replace_user)
    app.router.add_patch("/users/{id}", enrich_user)
    app.router.add_delete("/users/{id}", delete_user)
    app.router.add_get("/users/{id}/history", user_history)
    app.router.add_get("/users/{id}/diff", user_diff)
    app.router.add_post("/users/{id}/restore", restore_user)
    return app


if __name__ == "__main__":
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 8080
    web.run_app(make_app(ChronosConfig.from_file(sys.argv[1])), port=port)
