"""The FastAPI example service over the embedded servers: CRUD, conditional requests,
idempotent retries, and bad input answered with 4xx problem details (never 500)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest_asyncio

from examples.fastapi_app import create_app
from tests.conftest import MakeConfig

USERS = {"users": {"indexed_props": ["email", "status"]}}
PROBLEM = "application/problem+json"


@pytest_asyncio.fixture(loop_scope="session")
async def client(make_config: MakeConfig, db_name: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app; its lifespan (ASGITransport does not run it) entered here."""
    app = create_app(make_config("local", collection_maps=USERS), db=db_name)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            yield c


def assert_problem(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == PROBLEM
    body: dict[str, Any] = resp.json()
    assert body["status"] == status
    assert isinstance(body["title"], str) and isinstance(body["detail"], str)
    assert "type" in body
    return body


async def test_crud_flow(client: httpx.AsyncClient) -> None:
    r = await client.post("/users", json={"email": "ada@x", "status": "invited"})
    assert r.status_code == 201
    uid = r.json()["id"]
    assert r.headers["location"] == f"/users/{uid}"
    assert r.headers["etag"] == '"0"'

    r = await client.get(f"/users/{uid}")
    assert r.status_code == 200 and r.headers["etag"] == '"0"'
    assert r.json()["data"] == {"email": "ada@x", "status": "invited"}

    r = await client.put(
        f"/users/{uid}", json={"email": "ada@x", "status": "active"}, headers={"If-Match": '"0"'}
    )
    assert r.status_code == 200 and r.json()["ov"] == 1 and r.headers["etag"] == '"1"'

    r = await client.patch(f"/users/{uid}", json={"tags": ["vip"]})
    assert r.status_code == 200 and r.json()["ov"] == 2

    r = await client.get(f"/users/{uid}")
    assert r.json()["data"] == {"email": "ada@x", "status": "active", "tags": ["vip"]}
    assert r.headers["etag"] == '"2"'

    r = await client.get(f"/users/{uid}", params={"ov": 0})
    assert r.json()["data"]["status"] == "invited" and r.headers["etag"] == '"0"'
    r = await client.get(f"/users/{uid}", params={"at": "2000-01-01T00:00:00Z"})
    assert_problem(r, 404)
    at = (await client.get(f"/users/{uid}/history")).json()[-1]["at"]
    r = await client.get(f"/users/{uid}", params={"at": at})
    assert r.json()["ov"] == 0

    r = await client.get(f"/users/{uid}/history")
    assert [v["ov"] for v in r.json()] == [2, 1, 0]
    assert [v["op"] for v in r.json()][-1] == "create"

    r = await client.get(f"/users/{uid}/diff", params={"from": 0, "to": 1})
    assert r.json() == [{"op": "replace", "path": "/status", "value": "active"}]

    r = await client.post(f"/users/{uid}/restore", json={"ov": 0})
    assert r.status_code == 200 and r.json()["ov"] == 3
    r = await client.get(f"/users/{uid}")
    assert r.json()["data"] == {"email": "ada@x", "status": "invited"}

    r = await client.delete(f"/users/{uid}", headers={"If-Match": '"3"'})
    assert r.status_code == 200 and r.json()["ov"] == 4
    body = assert_problem(await client.get(f"/users/{uid}"), 410)
    assert body["current_ov"] == 4
    assert_problem(await client.put(f"/users/{uid}", json={}, headers={"If-Match": "*"}), 410)
    assert_problem(await client.patch(f"/users/{uid}", json={"a": 1}), 410)


async def test_list_with_cursor(client: httpx.AsyncClient) -> None:
    for n in range(5):
        r = await client.post("/users", json={"email": f"u{n}@x", "status": "active"})
        assert r.status_code == 201
    await client.post("/users", json={"email": "other@x", "status": "invited"})
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(5):
        params: dict[str, Any] = {"status": "active", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/users", params=params)).json()
        seen += [i["data"]["email"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == [f"u{n}@x" for n in range(5)]
    assert_problem(await client.get("/users", params={"cursor": "garbage"}), 422)


async def test_concurrent_puts_with_same_if_match(client: httpx.AsyncClient) -> None:
    uid = (await client.post("/users", json={"email": "a@x"})).json()["id"]
    a, b = await asyncio.gather(
        client.put(f"/users/{uid}", json={"email": "a@x", "n": 1}, headers={"If-Match": '"0"'}),
        client.put(f"/users/{uid}", json={"email": "a@x", "n": 2}, headers={"If-Match": '"0"'}),
    )
    assert sorted([a.status_code, b.status_code]) == [200, 412]
    loser = a if a.status_code == 412 else b
    assert assert_problem(loser, 412)["current_ov"] == 1
    # PUT refuses to overwrite blindly: If-Match is required.
    r = await client.put(f"/users/{uid}", json={"email": "a@x"})
    assert_problem(r, 428)


async def test_idempotent_retry_returns_the_first_result(client: httpx.AsyncClient) -> None:
    headers = {"Idempotency-Key": "signup-42"}
    first = await client.post("/users", json={"email": "k@x"}, headers=headers)
    again = await client.post("/users", json={"email": "k@x"}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    page = (await client.get("/users")).json()
    assert [i["data"]["email"] for i in page["items"]] == ["k@x"]
    uid = first.json()["id"]
    put = {"If-Match": '"0"', "Idempotency-Key": "put-1"}
    one = await client.put(f"/users/{uid}", json={"email": "k2@x"}, headers=put)
    two = await client.put(f"/users/{uid}", json={"email": "k2@x"}, headers=put)
    assert one.status_code == two.status_code == 200 and one.json() == two.json()
    history = (await client.get(f"/users/{uid}/history")).json()
    assert [v["ov"] for v in history] == [1, 0]
    bad = await client.post("/users", json={"email": "k@x"}, headers={"Idempotency-Key": "a b"})
    assert_problem(bad, 400)


async def test_bad_input_is_4xx_never_500(client: httpx.AsyncClient) -> None:
    uid = (await client.post("/users", json={"email": "a@x"})).json()["id"]
    json_headers = {"Content-Type": "application/json"}
    deep: Any = 1
    for _ in range(70):  # limits.max_depth is 64
        deep = {"d": deep}
    cases = [
        ("GET", f"/users/{uid}?at=not-a-date", None, {}, 400),
        ("GET", f"/users/{uid}?ov=-1", None, {}, 422),
        ("GET", f"/users/{uid}?ov=99999999999999999999", None, {}, 422),
        ("GET", f"/users/{uid}?ov=7", None, {}, 404),
        ("GET", "/users/a%2Fb", None, {}, None),
        ("GET", "/users/a%2Fb/history", None, {}, None),
        ("GET", "/users/..", None, {}, None),
        ("GET", f"/users/{uid}/diff?from=0&to=9", None, {}, 404),
        ("POST", "/users", '{"x": NaN}', json_headers, 422),
        ("POST", "/users", '{"x": 123456789012345678901}', json_headers, 422),
        ("POST", "/users", '{"x": ', json_headers, 422),
        ("POST", "/users", "[1, 2]", json_headers, 422),
        ("PUT", "/users/nobody", '{"email": "a@x"}', {**json_headers, "If-Match": "*"}, 404),
        ("PUT", f"/users/{uid}", "{}", {**json_headers, "If-Match": "0"}, 400),
        ("PUT", f"/users/{uid}", "{}", {**json_headers, "If-Match": 'W/"0"'}, 400),
        ("PUT", f"/users/{uid}", "{}", {**json_headers, "If-Match": '"0", "1"'}, 400),
        ("PUT", f"/users/{uid}", "{}", {**json_headers, "If-Match": '"-1"'}, 400),
        ("PUT", f"/users/{uid}", "{}", {**json_headers, "If-Match": '"5"'}, 412),
        ("PATCH", "/users/nobody", '{"a": 1}', json_headers, 404),
        ("DELETE", "/users/nobody", None, {}, 404),
        (
            "POST",
            f"/users/{uid}/restore",
            '{"ov": 1, "at": "2026-01-01T00:00:00Z"}',
            json_headers,
            422,
        ),
        ("POST", f"/users/{uid}/restore", '{"ov": 9}', json_headers, 404),
        ("GET", "/users/nobody/history", None, {}, 404),
        ("GET", "/users?limit=0", None, {}, 422),
    ]
    cases.append(("POST", "/users", json.dumps(deep), json_headers, 422))
    for method, url, content, headers, status in cases:
        r = await client.request(method, url, content=content, headers=headers)
        assert 400 <= r.status_code < 500, (method, url, r.status_code, r.text)
        assert r.headers["content-type"] == PROBLEM, (method, url)
        if status is not None:
            assert r.status_code == status, (method, url, r.status_code, r.text)
        assert "Traceback" not in r.text and "mongodb://" not in r.text


async def test_openapi_documents_models_and_problems(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    put = spec["paths"]["/users/{user_id}"]["put"]
    assert {"200", "404", "409", "410", "412", "422", "503"} <= set(put["responses"])
    assert "application/problem+json" in put["responses"]["412"]["content"]
    ok = put["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/Written"}
    assert {"Record", "Written", "Version", "RecordPage", "ProblemModel"} <= set(
        spec["components"]["schemas"]
    )
    params = {p["name"].lower() for p in put["parameters"]}
    assert {"if-match", "idempotency-key"} <= params


async def test_unexpected_error_is_a_generic_500(make_config: MakeConfig, db_name: str) -> None:
    from chronos_async.integrations.fastapi import install_error_handlers

    app = create_app(make_config("local", collection_maps=USERS), db=db_name)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals mongodb://user:pw@host")

    install_error_handlers(app)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            r = await c.get("/boom")
    body = assert_problem(r, 500)
    assert "secret" not in r.text and body["detail"] == "the server could not complete the request"
