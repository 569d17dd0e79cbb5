"""Reads: latest, a version, as-of, list_by_meta, history, projection, presign, integrity."""

from __future__ import annotations

import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest

from chronos_async import Chronos, Collection, IntegrityError, ValidationError
from chronos_async._keys import head_id
from tests.conftest import USERS_MAP


async def _three_versions(users: Collection) -> tuple[str, list[object]]:
    r0 = await users.create({"email": "a@x", "step": 0}, actor="u0", reason="r0")
    r1 = await users.update(
        r0.id, {"email": "a@x", "step": 1}, expected_ov=0, actor="u1", reason="r1"
    )
    r2 = await users.update(
        r0.id, {"email": "a@x", "step": 2}, expected_ov=1, actor="u2", reason="r2"
    )
    return r0.id, [r0, r1, r2]


async def test_get_version_returns_each_version_of_this_record_only(users: Collection) -> None:
    other = await users.create({"email": "other@x", "step": 99})
    await users.update(other.id, {"email": "other@x", "step": 98}, expected_ov=0)
    item_id, _ = await _three_versions(users)
    for ov in range(3):
        item = await users.get_version(item_id, ov)
        assert item is not None and item.ov == ov and item.data["step"] == ov
        assert item.actor == f"u{ov}" and item.id == item_id
    assert await users.get_version(item_id, 3) is None
    assert await users.get_version("missing", 0) is None
    with pytest.raises(ValidationError):
        await users.get_version(item_id, -1)


async def test_get_as_of_returns_newest_version_at_or_before(users: Collection) -> None:
    item_id, results = await _three_versions(users)
    r0, r1, r2 = results
    assert await users.get_as_of(item_id, r0.at - timedelta(seconds=1)) is None  # type: ignore[attr-defined]
    for expected, r in enumerate(results):
        at = r.at  # type: ignore[attr-defined]
        exact = await users.get_as_of(item_id, at)
        assert exact is not None and exact.ov == expected
        as_text = await users.get_as_of(item_id, at.isoformat())
        assert as_text is not None and as_text.ov == expected
    later = await users.get_as_of(item_id, r2.at + timedelta(days=1))  # type: ignore[attr-defined]
    assert later is not None and later.ov == 2
    just_before = await users.get_as_of(item_id, r1.at - timedelta(microseconds=1))  # type: ignore[attr-defined]
    assert just_before is not None and just_before.ov == 0
    assert (await users.get_as_of(item_id, "2100-01-01T00:00:00Z")).ov == 2  # type: ignore[union-attr]
    with pytest.raises(ValidationError):
        await users.get_as_of(item_id, "yesterday-ish")


async def test_get_as_of_hides_deleted_state_unless_asked(users: Collection) -> None:
    r = await users.create({"email": "a@x"})
    d = await users.delete(r.id)
    assert await users.get_as_of(r.id, d.at) is None
    shown = await users.get_as_of(r.id, d.at, include_deleted=True)
    assert shown is not None and shown.deleted
    before = await users.get_as_of(r.id, r.at)
    assert before is not None and not before.deleted


async def test_projection_keeps_listed_paths(users: Collection) -> None:
    r = await users.create({"email": "a@x", "profile": {"name": "A", "age": 3}, "secret": "s"})
    item = await users.get_latest(r.id, projection=["email", "profile.name", "absent"])
    assert item is not None and item.data == {"email": "a@x", "profile": {"name": "A"}}
    with pytest.raises(ValidationError):
        await users.get_latest(r.id, projection="email")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        await users.get_latest(r.id, projection=["$where"])


async def test_history_is_newest_first_with_facts(users: Collection) -> None:
    item_id, _ = await _three_versions(users)
    await users.delete(item_id, actor="admin", reason="bye")
    versions = [v async for v in users.history(item_id)]
    assert [(v.ov, v.op, v.actor, v.reason) for v in versions] == [
        (3, "delete", "admin", "bye"),
        (2, "update", "u2", "r2"),
        (1, "update", "u1", "r1"),
        (0, "create", "u0", "r0"),
    ]
    assert versions[0].deleted and not versions[1].deleted
    assert all(v.size > 0 and len(v.sha256) == 64 for v in versions)
    assert [v.at for v in versions] == sorted((v.at for v in versions), reverse=True)
    assert [v async for v in users.history("never-existed")] == []


async def test_list_by_meta_filters_sorts_and_pages(users: Collection) -> None:
    for i in range(23):
        await users.create(
            {"email": f"u{i:02d}@x", "status": "active" if i % 2 else "new", "score": i}
        )
    seen: list[int] = []
    page = await users.list_by_meta({"status": "active"}, limit=5, sort={"score": 1})
    while True:
        seen.extend(item.data["score"] for item in page.items)
        if page.next_cursor is None:
            break
        page = await users.list_by_meta(
            {"status": "active"}, limit=5, sort={"score": 1}, after=page.next_cursor
        )
    assert seen == [i for i in range(23) if i % 2]

    top = await users.list_by_meta({"score": {"$gte": 20}}, sort=[("score", -1)])
    assert [i.data["score"] for i in top.items] == [22, 21, 20] and top.next_cursor is None
    some = await users.list_by_meta({"score": {"$in": [1, 2, 3]}, "status": {"$ne": "new"}})
    assert sorted(i.data["score"] for i in some.items) == [1, 3]
    either = await users.list_by_meta({"$or": [{"score": 0}, {"score": 22}]})
    assert sorted(i.data["score"] for i in either.items) == [0, 22]
    newest = await users.list_by_meta(limit=1)
    assert newest.items[0].data["score"] == 22 and newest.next_cursor is not None


async def test_list_by_meta_excludes_deleted_unless_asked(users: Collection) -> None:
    a = await users.create({"email": "a@x", "status": "x"})
    await users.create({"email": "b@x", "status": "x"})
    await users.delete(a.id)
    assert len((await users.list_by_meta({"status": "x"})).items) == 1
    assert len((await users.list_by_meta({"status": "x"}, include_deleted=True)).items) == 2


async def test_list_limit_is_validated_never_silently_capped(users: Collection) -> None:
    await users.create({"email": "a@x"})
    with pytest.raises(ValidationError):
        await users.list_by_meta(limit=0)
    assert len((await users.list_by_meta(limit=1000)).items) == 1  # the maximum itself
    for too_many in (1001, 5000, 10_000):
        with pytest.raises(ValidationError, match=r"from 1 to 1000.*max_list_limit"):
            await users.list_by_meta(limit=too_many)


async def test_list_limit_follows_a_configured_maximum(make_config: Any, db_name: str) -> None:
    config = make_config("local", collection_maps=USERS_MAP)
    config = config.model_copy(
        update={"limits": config.limits.model_copy(update={"max_list_limit": 10})}
    )
    async with Chronos(config) as chronos:
        users = chronos.collection("users", db=db_name)
        await users.create({"email": "a@x"})
        assert len((await users.list_by_meta()).items) == 1  # default 50, within 10
        with pytest.raises(ValidationError, match="from 1 to 10 "):
            await users.list_by_meta(limit=11)


@pytest.mark.parametrize(
    "naive",
    [datetime(2100, 1, 1), "2100-01-01T00:00:00", "2100-01-01"],
    ids=repr,
)
async def test_get_as_of_refuses_naive_times(users: Collection, naive: datetime | str) -> None:
    r = await users.create({"email": "a@x"})
    with pytest.raises(ValidationError, match="time zone") as info:
        await users.get_as_of(r.id, naive)
    assert "Z" in str(info.value) and "tzinfo=UTC" in str(info.value)
    aware = await users.get_as_of(r.id, datetime(2100, 1, 1, tzinfo=UTC))
    assert aware is not None and aware.ov == 0
    east = await users.get_as_of(r.id, "2100-01-01T00:00:00+02:00")
    assert east is not None and east.ov == 0


@pytest.mark.parametrize(
    "bad",
    [
        {"$where": "this.a == 1"},
        {"email": {"$regex": ".*"}},
        {"email": {"$where": "1"}},
        {"$expr": {"$eq": ["$a", 1]}},
        {"$function": {}},
        {"notIndexed": 1},
        {"email": {"nested": 1}},
        {"email": {"$in": "not-a-list"}},
    ],
)
async def test_unsafe_filters_are_rejected(users: Collection, bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        await users.list_by_meta(bad)


async def test_garbage_cursor_is_rejected(users: Collection) -> None:
    with pytest.raises(ValidationError):
        await users.list_by_meta(after="not-a-cursor")
    page = await users.list_by_meta(limit=1, sort={"email": 1})
    await users.create({"email": "a@x"})
    await users.create({"email": "b@x"})
    page = await users.list_by_meta(limit=1, sort={"email": 1})
    assert page.next_cursor is not None
    with pytest.raises(ValidationError):
        await users.list_by_meta(limit=1, sort={"email": -1}, after=page.next_cursor)


async def test_presigned_url_serves_the_exact_payload(users: Collection) -> None:
    r = await users.create({"email": "a@x", "big": "y" * 50_000})
    item = await users.get_latest(r.id, presign=True, ttl_seconds=60)
    assert item is not None and "payload" in item.urls

    def fetch(url: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return response.status, bytes(response.read())
        except urllib.error.HTTPError as error:
            with error:
                return error.code, b""

    status, body = await anyio.to_thread.run_sync(fetch, item.urls["payload"])
    assert status == 200
    assert body.startswith(b'{"big":') and b'"email":"a@x"' in body
    tampered = item.urls["payload"].replace("Signature=", "Signature=0")
    assert (await anyio.to_thread.run_sync(fetch, tampered))[0] == 403
    for ttl in (0, 8 * 24 * 3600, -5):
        with pytest.raises(ValidationError):
            await users.get_latest(r.id, presign=True, ttl_seconds=ttl)


async def test_corrupted_inline_payload_raises_integrity_error(users: Collection) -> None:
    r = await users.create({"email": "a@x"})
    scope = users._scope
    await scope.repo.heads.update_one(
        {"_id": head_id(None, r.id)}, {"$set": {"inline": '{"email":"evil@x"}'}}
    )
    with pytest.raises(IntegrityError):
        await users.get_latest(r.id)


async def test_missing_or_corrupted_stored_payload_raises_integrity_error(
    users: Collection,
) -> None:
    r = await users.create({"email": "a@x", "pad": "p" * 40_000})  # too big to be inline
    scope = users._scope
    head = await scope.repo.find_head(head_id(None, r.id))
    assert head is not None and head.get("inline") is None
    await scope.store.delete([head["key"]])
    with pytest.raises(IntegrityError, match="missing"):
        await users.get_latest(r.id)
    r2 = await users.create({"email": "b@x", "pad": "q" * 40_000})
    head2 = await scope.repo.find_head(head_id(None, r2.id))
    assert head2 is not None
    await scope.repo.heads.update_one({"_id": head2["_id"]}, {"$set": {"sha256": "0" * 64}})
    with pytest.raises(IntegrityError, match="sha256"):
        await users.get_latest(r2.id)
