"""A FastAPI service keeping one Chronos open for its lifetime (``pip install fastapi uvicorn``).

    CHRONOS_CONFIG=chronos.json uvicorn examples.fastapi_app:app

The application (not the library) decides where its config file lives.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, HTTPException, Request  # type: ignore[import-not-found]

from chronos_async import Chronos, ChronosConfig, ItemDeletedError, VersionConflictError


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    config = ChronosConfig.from_file(os.environ.get("CHRONOS_CONFIG", "chronos.json"))
    async with Chronos(config) as chronos:
        app.state.chronos = chronos
        yield


app = FastAPI(lifespan=lifespan)


def _users(request: Request) -> Any:
    return request.app.state.chronos.collection("users", db="myapp")


@app.post("/users")
async def create_user(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    r = await _users(request).create(body, actor="api", reason="POST /users")
    return {"id": r.id, "ov": r.ov}


@app.put("/users/{user_id}")
async def replace_user(
    request: Request, user_id: str, ov: int, body: dict[str, Any]
) -> dict[str, Any]:
    try:
        r = await _users(request).update(user_id, body, expected_ov=ov, actor="api")
    except VersionConflictError as exc:
        raise HTTPException(409, f"stale version: current ov is {exc.actual}") from exc
    except ItemDeletedError as exc:
        raise HTTPException(410, "deleted") from exc
    return {"id": r.id, "ov": r.ov}


@app.get("/users/{user_id}")
async def read_user(request: Request, user_id: str, at: str | None = None) -> dict[str, Any]:
    users = _users(request)
    item = await (users.get_as_of(user_id, at) if at else users.get_latest(user_id))
    if item is None:
        raise HTTPException(404, "no such user at that time")
    return {"id": item.id, "ov": item.ov, "data": item.data, "updated_at": item.updated_at}
