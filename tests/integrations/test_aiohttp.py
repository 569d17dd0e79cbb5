"""The aiohttp example service over the embedded servers: CRUD, conditional requests,
idempotent retries, and bad input answered with 4xx problem details (never 500)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer

from examples.aiohttp_app import make_app
from tests.conftest import MakeConfig

USERS = {"users": {"indexed_props": ["email", "status"]}}
PROBLEM = "application/problem+json"

Client = TestClient[web.Request, web.Application]


@pytest_asyncio.fixture(loop_scope="session")
async def client(make_config: MakeConfig, db_name: str) -> AsyncIterator[Client]:
    """A client of the app on a free port (cleanup context run by the test server)."""
    app = make_app(make_config("local", collection_maps=USERS), db=db_name)
    async with TestClient(TestServer(app)) as c:
        yield c


async def problem(resp: ClientResponse, status: int) -> dict[str, Any]:
    text = await resp.text()
    assert resp.status == status, text
    assert resp.content_type == PROBLEM
    body: dict[str, Any] = json.loads(text)
    assert body["status"] == status
    assert isinstance(body["title"], str) and isinstance(body["detail"], str)
    assert "type" in body
    return body


async def test_crud_flow(client: Client) -> None:
    r = await client.post("/users", json={"email": "ada@x", "status": "invited"})
    assert r.status == 201
    uid = (await r.json())["id"]
    assert r.headers["Location"] == f"/users/{uid}" and r.headers["ETag"] == '"0"'

    r = await client.get(f"/users/{uid}")
    assert r.status == 200 and r.headers["ETag"] == '"0"'
    assert (await r.json())["data"] == {"email": "ada@x", "status": "invited"}

    r = await client.put(
        f"/users/{uid}", json={"email": "ada@x", "status": "active"}, headers={"If-Match": '"0"'}
    )
    assert r.status == 200 and r.headers["ETag"] == '"1"'
    r = await client.patch(f"/users/{uid}", json={"tags": ["vip"]})
    assert r.status == 200 and (await r.json())["ov"] == 2
    r = await client.get(f"/users/{uid}")
    assert (await r.json())["data"] == {"email": "ada@x", "status": "active", "tags": ["vip"]}

    r = await client.get(f"/users/{uid}", params={"ov": "0"})
    assert (await r.json())["data"]["status"] == "invited" and r.headers["ETag"] == '"0"'
    await problem(await client.get(f"/users/{uid}", params={"at": "2000-01-01T00:00:00Z"}), 404)
    history = await (await client.get(f"/users/{uid}/history")).json()
    assert [v["ov"] for v in history] == [2, 1, 0]
    r = await client.get(f"/users/{uid}", params={"at": history[-1]["at"]})
    assert (await r.json())["ov"] == 0

    r = await client.get(f"/users/{uid}/diff", params={"from": "0", "to": "1"})
    assert await r.json() == [{"op": "replace", "path": "/status", "value": "active"}]

    r = await client.post(f"/users/{uid}/restore", json={"ov": 0})
    assert r.status == 200 and (await r.json())["ov"] == 3
    r = await client.get(f"/users/{uid}")
    assert (await r.json())["data"] == {"email": "ada@x", "status": "invited"}

    r = await client.delete(f"/users/{uid}", headers={"If-Match": '"3"'})
    assert r.status == 200 and (await r.json())["ov"] == 4
    assert (await problem(await client.get(f"/users/{uid}"), 410))["current_ov"] == 4
    await problem(await client.put(f"/users/{uid}", json={}, headers={"If-Match": "*"}), 410)


async def test_list_with_cursor(client: Client) -> None:
    for n in range(5):
        assert (
            await client.post("/users", json={"email": f"u{n}@x", "status": "on"})
        ).status == 201
    await client.post("/users", json={"email": "other@x", "status": "off"})
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(5):
        params = {"status": "on", "limit": "2", **({"cursor": cursor} if cursor else {})}
        page = await (await client.get("/users", params=params)).json()
        seen += [i["data"]["email"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == [f"u{n}@x" for n in range(5)]


async def test_concurrent_puts_with_same_if_match(client: Client) -> None:
    uid = (await (await client.post("/users", json={"email": "a@x"})).json())["id"]
    a, b = await asyncio.gather(
        client.put(f"/users/{uid}", json={"email": "a@x", "n": 1}, headers={"If-Match": '"0"'}),
        client.put(f"/users/{uid}", json={"email": "a@x", "n": 2}, headers={"If-Match": '"0"'}),
    )
    assert sorted([a.status, b.status]) == [200, 412]
    loser = a if a.status == 412 else b
    assert (await problem(loser, 412))["current_ov"] == 1
    await problem(await client.put(f"/users/{uid}", json={"email": "a@x"}), 428)


async def test_idempotent_retry_returns_the_first_result(client: Client) -> None:
    headers = {"Idempotency-Key": "signup-42"}
    first = await client.post("/users", json={"email": "k@x"}, headers=headers)
    again = await client.post("/users", json={"email": "k@x"}, headers=headers)
    assert first.status == again.status == 201
    assert await first.json() == await again.json()
    page = await (await client.get("/users")).json()
    assert [i["data"]["email"] for i in page["items"]] == ["k@x"]


async def test_bad_input_is_4xx_never_500(client: Client) -> None:
    uid = (await (await client.post("/users", json={"email": "a@x"})).json())["id"]
    deep: Any = 1
    for _ in range(70):  # limits.max_depth is 64
        deep = {"d": deep}
    cases: list[tuple[str, str, str | None, dict[str, str], int | None]] = [
        ("GET", f"/users/{uid}?at=not-a-date", None, {}, 400),
        ("GET", f"/users/{uid}?ov=-1", None, {}, 400),
        ("GET", f"/users/{uid}?ov=99999999999999999999", None, {}, 400),
        ("GET", f"/users/{uid}?ov=7", None, {}, 404),
        ("GET", "/users/a%2Fb", None, {}, None),
        ("GET", "/users/a%2Fb/history", None, {}, None),
        ("PUT", "/users/a%2Fb", "{}", {"If-Match": "*"}, None),
        ("GET", f"/users/{uid}/diff?from=0&to=9", None, {}, 404),
        ("GET", f"/users/{uid}/diff?from=x&to=1", None, {}, 400),
        ("POST", "/users", '{"x": NaN}', {}, 422),
        ("POST", "/users", '{"x": 123456789012345678901}', {}, 422),
        ("POST", "/users", json.dumps(deep), {}, 422),
        ("POST", "/users", '{"x": ', {}, 422),
        ("POST", "/users", "[1, 2]", {}, 422),
        ("PUT", "/users/nobody", '{"email": "a@x"}', {"If-Match": "*"}, 404),
        ("PUT", f"/users/{uid}", "{}", {"If-Match": "0"}, 400),
        ("PUT", f"/users/{uid}", "{}", {"If-Match": 'W/"0"'}, 400),
        ("PUT", f"/users/{uid}", "{}", {"If-Match": '"0", "1"'}, 400),
        ("PUT", f"/users/{uid}", "{}", {"If-Match": '"5"'}, 412),
        ("PATCH", "/users/nobody", '{"a": 1}', {}, 404),
        ("DELETE", "/users/nobody", None, {}, 404),
        ("POST", f"/users/{uid}/restore", '{"ov": 1, "at": "2026-01-01"}', {}, 422),
        ("POST", f"/users/{uid}/restore", '{"ov": 9}', {}, 404),
        ("GET", "/users/nobody/history", None, {}, 404),
        ("GET", "/users?limit=0", None, {}, 422),
        ("GET", "/users?cursor=garbage", None, {}, 422),
        ("POST", "/users", '{"email": "a@x"}', {"Idempotency-Key": "a b"}, 400),
    ]
    for method, url, data, headers, status in cases:
        r = await client.request(method, url, data=data, headers=headers)
        text = await r.text()
        assert 400 <= r.status < 500, (method, url, r.status, text)
        assert r.content_type == PROBLEM, (method, url)
        if status is not None:
            assert r.status == status, (method, url, r.status, text)
        assert "Traceback" not in text and "mongodb://" not in text


async def test_unexpected_error_is_a_generic_500(make_config: MakeConfig, db_name: str) -> None:
    app = make_app(make_config("local", collection_maps=USERS), db=db_name)

    async def boom(request: web.Request) -> web.Response:
        raise RuntimeError("secret internals mongodb://user:pw@host")

    app.router.add_get("/boom", boom)
    async with TestClient(TestServer(app)) as c:
        r = await c.get("/boom")
        body = await problem(r, 500)
    assert "secret" not in json.dumps(body)
    assert body["detail"] == "the server could not complete the request"
