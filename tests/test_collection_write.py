"""create, update, delete: versions, lineage, optimistic locking, refusals that write nothing."""

from __future__ import annotations

import asyncio
import inspect
from decimal import Decimal
from typing import Any

import pydantic
import pytest

from chronos_async import (
    Chronos,
    Collection,
    ItemDeletedError,
    ItemExistsError,
    NotFoundError,
    ValidationError,
    VersionConflictError,
)
from tests.support import footprint


async def test_create_records_version_zero_with_actor_reason_and_time(users: Collection) -> None:
    r = await users.create({"email": "a@example.com", "n": 1}, actor="alice", reason="signup")
    assert r.ov == 0 and r.cv >= 1 and r.changed
    item = await users.get_latest(r.id)
    assert item is not None
    assert item.data == {"email": "a@example.com", "n": 1}
    assert (item.ov, item.cv, item.actor, item.reason) == (0, r.cv, "alice", "signup")
    assert item.created_at == item.updated_at == r.at
    assert item.deleted is False and item.deleted_at is None


async def test_create_with_given_id_and_taken_id(users: Collection) -> None:
    r = await users.create({"email": "a@x"}, id="user:42")
    assert r.id == "user:42"
    before = await footprint(users)
    with pytest.raises(ItemExistsError) as info:
        await users.create({"email": "b@x"}, id="user:42")
    assert info.value.id == "user:42"
    assert await footprint(users) == before
    item = await users.get_latest("user:42")
    assert item is not None and item.data == {"email": "a@x"}


async def test_update_replaces_data_and_counts_versions(users: Collection) -> None:
    r0 = await users.create({"email": "a@x", "old": True})
    r1 = await users.update(r0.id, {"email": "b@x"}, expected_ov=0, actor="bob", reason="fix")
    assert (r1.ov, r1.id) == (1, r0.id)
    assert r1.cv > r0.cv and r1.at > r0.at
    item = await users.get_latest(r0.id)
    assert item is not None and item.data == {"email": "b@x"}
    assert (item.actor, item.reason) == ("bob", "fix")
    assert item.created_at == r0.at and item.updated_at == r1.at


async def test_wrong_expected_ov_raises_conflict_and_writes_nothing(users: Collection) -> None:
    r = await users.create({"email": "a@x"})
    await users.update(r.id, {"email": "b@x"}, expected_ov=0)
    before = await footprint(users)
    with pytest.raises(VersionConflictError) as info:
        await users.update(r.id, {"email": "c@x"}, expected_ov=0)
    assert (info.value.expected, info.value.actual) == (0, 1)
    with pytest.raises(VersionConflictError):
        await users.delete(r.id, expected_ov=5)
    assert await footprint(users) == before


async def test_update_with_explicit_none_overwrites_without_check(users: Collection) -> None:
    r = await users.create({"email": "a@x"})
    await users.update(r.id, {"email": "b@x"}, expected_ov=None)
    r2 = await users.update(r.id, {"email": "c@x"}, expected_ov=None)
    assert r2.ov == 2


async def test_update_or_delete_missing_record_is_not_found(users: Collection) -> None:
    with pytest.raises(NotFoundError):
        await users.update("nope", {"email": "x"}, expected_ov=0)
    with pytest.raises(NotFoundError):
        await users.delete("nope")
    assert await footprint(users) == (0, 0, 0)


async def test_logical_delete_keeps_history_and_blocks_updates(users: Collection) -> None:
    r = await users.create({"email": "a@x"})
    d = await users.delete(r.id, expected_ov=0, actor="admin", reason="closed")
    assert d.ov == 1
    assert await users.get_latest(r.id) is None
    shown = await users.get_latest(r.id, include_deleted=True)
    assert shown is not None and shown.deleted and shown.deleted_at == d.at
    assert shown.data == {"email": "a@x"}
    with pytest.raises(ItemDeletedError):
        await users.update(r.id, {"email": "b@x"}, expected_ov=1)
    with pytest.raises(ItemDeletedError):
        await users.delete(r.id)
    assert [v.op async for v in users.history(r.id)] == ["delete", "create"]
    old = await users.get_version(r.id, 0)
    assert old is not None and not old.deleted


async def test_hard_delete_refused_unless_enabled(users: Collection) -> None:
    r = await users.create({"email": "a@x"})
    with pytest.raises(ValidationError, match="hard delete is disabled"):
        await users.delete(r.id, hard=True)
    assert await users.get_latest(r.id) is not None


async def test_hard_delete_removes_head_versions_and_payloads(
    make_config: Any, db_name: str
) -> None:
    async with Chronos(make_config("s3", hard_delete_enabled=True)) as chronos:
        users = chronos.collection("users", db=db_name)
        keep = await users.create({"email": "keep@x"})
        r = await users.create({"email": "a@x"})
        await users.update(r.id, {"email": "b@x"}, expected_ov=0)
        await users.delete(r.id, hard=True)
        assert await users.get_latest(r.id, include_deleted=True) is None
        assert await users.get_version(r.id, 0) is None
        assert [v async for v in users.history(r.id)] == []
        assert await footprint(users) == (1, 1, 1)
        assert await users.get_latest(keep.id) is not None
        again = await users.create({"email": "new@x"}, id=r.id)
        assert again.ov == 0


async def test_lineage_is_recorded_and_origin_inherited(users: Collection) -> None:
    root = await users.create({"email": "root@x"})
    child = await users.create({"email": "child@x"}, parent_id=root.id)
    grandchild = await users.create({"email": "gc@x"}, parent_id=child.id)
    explicit = await users.create({"email": "e@x"}, parent_id=root.id, origin_id="external:7")
    got = {r.id: await users.get_latest(r.id) for r in (child, grandchild, explicit)}
    assert (got[child.id].parent_id, got[child.id].origin_id) == (root.id, root.id)  # type: ignore[union-attr]
    assert (got[grandchild.id].parent_id, got[grandchild.id].origin_id) == (child.id, root.id)  # type: ignore[union-attr]
    assert got[explicit.id].origin_id == "external:7"  # type: ignore[union-attr]
    await users.update(child.id, {"email": "child2@x"}, expected_ov=0)
    after = await users.get_latest(child.id)
    assert after is not None and (after.parent_id, after.origin_id) == (root.id, root.id)


async def test_cv_strictly_increases_across_records(users: Collection) -> None:
    results = [await users.create({"email": f"{i}@x"}) for i in range(5)]
    results.append(await users.update(results[0].id, {"email": "z@x"}, expected_ov=0))
    cvs = [r.cv for r in results]
    assert cvs == sorted(cvs) and len(set(cvs)) == len(cvs)


BAD_PAYLOADS: list[Any] = [
    [1, 2],
    "text",
    {"x": float("nan")},
    {"x": float("inf")},
    {"x": 2**64},
    {"x": {1, 2}},
    {"x": b"bytes"},
    {1: "non-str key"},
    {"x": "\ud800"},
    {"x": object()},
]


@pytest.mark.parametrize("payload", BAD_PAYLOADS, ids=lambda p: type(p).__name__)
async def test_non_json_payloads_are_refused_and_nothing_is_written(
    users: Collection, payload: Any
) -> None:
    r = await users.create({"email": "a@x"})
    before = await footprint(users)
    with pytest.raises(ValidationError):
        await users.create(payload)
    with pytest.raises(ValidationError):
        await users.update(r.id, payload, expected_ov=0)
    assert await footprint(users) == before


async def test_oversized_and_too_deep_payloads_are_refused(users: Collection) -> None:
    big = {"email": "a@x", "blob": "x" * (17 * 1024 * 1024)}
    with pytest.raises(ValidationError, match="limit"):
        await users.create(big)
    deep: dict[str, Any] = {"email": "a@x"}
    cursor = deep
    for _ in range(100):
        cursor["d"] = {}
        cursor = cursor["d"]
    with pytest.raises(ValidationError, match="nested"):
        await users.create(deep)
    assert await footprint(users) == (0, 0, 0)


@pytest.mark.parametrize(
    "bad_id", ["", "a/b", "../etc", "a..b", "x" * 129, "sp ace", "new\nline", 42, None.__class__]
)
async def test_unsafe_ids_are_refused(users: Collection, bad_id: Any) -> None:
    with pytest.raises(ValidationError):
        await users.create({"email": "a@x"}, id=bad_id)
    with pytest.raises(ValidationError):
        await users.get_latest(bad_id)
    with pytest.raises(ValidationError):
        await users.update(bad_id, {"email": "a@x"}, expected_ov=0)
    assert await footprint(users) == (0, 0, 0)


async def test_required_indexed_props_are_enforced(users: Collection) -> None:
    for data in ({}, {"email": None}, {"email": ""}, {"name": "no email"}):
        with pytest.raises(ValidationError, match="email"):
            await users.create(data)
    r = await users.create({"email": "a@x"})
    with pytest.raises(ValidationError, match="email"):
        await users.update(r.id, {"email": ""}, expected_ov=0)
    assert await footprint(users) == (1, 1, 1)


async def test_bad_arguments_are_validation_errors(users: Collection) -> None:
    r = await users.create({"email": "a@x"})
    for kwargs in ({"expected_ov": -1}, {"expected_ov": "0"}, {"expected_ov": True}):
        with pytest.raises(ValidationError):
            await users.update(r.id, {"email": "b@x"}, **kwargs)
    with pytest.raises(ValidationError, match="actor"):
        await users.create({"email": "a@x"}, actor=123)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="reason"):
        await users.create({"email": "a@x"}, reason="r" * 5000)


async def test_concurrent_writers_on_one_record_lose_nothing(users: Collection) -> None:
    r = await users.create({"email": "c@x", "n": 0})

    async def bump() -> int:
        while True:
            current = await users.get_latest(r.id)
            assert current is not None
            try:
                done = await users.update(
                    r.id, {"email": "c@x", "n": current.data["n"] + 1}, expected_ov=current.ov
                )
                return done.ov
            except VersionConflictError:
                continue

    ovs = await asyncio.gather(*(bump() for _ in range(16)))
    assert sorted(ovs) == list(range(1, 17))
    final = await users.get_latest(r.id)
    assert final is not None and final.data["n"] == 16 and final.ov == 16
    assert [v.ov async for v in users.history(r.id)] == list(range(16, -1, -1))


async def test_untyped_writes_refuse_models_and_non_json_values_saying_what_to_do(
    users: Collection,
) -> None:
    class User(pydantic.BaseModel):
        email: str
        balance: Decimal

    ada = User(email="a@x", balance=Decimal("1.50"))
    before = await footprint(users)
    with pytest.raises(ValidationError) as info:
        await users.create(ada)  # type: ignore[arg-type]
    message = str(info.value)
    assert "pydantic model (User)" in message
    assert 'model_dump(mode="json")' in message and "model=User" in message
    # model_dump() keeps the Decimal: refused, not converted behind the caller's back.
    with pytest.raises(ValidationError) as info:
        await users.create(ada.model_dump())
    message = str(info.value)
    assert "Decimal" in message and "not a JSON type" in message
    assert 'model_dump(mode="json")' in message and "typed collection" in message
    assert "1.50" not in message  # never the value
    assert await footprint(users) == before
    r = await users.create({"email": "b@x"})
    before = await footprint(users)
    with pytest.raises(ValidationError, match=r"pydantic model \(User\).*model_dump"):
        await users.update(r.id, ada, expected_ov=0)  # type: ignore[arg-type]
    assert await footprint(users) == before
    # What the message recommends works.
    done = await users.update(r.id, ada.model_dump(mode="json"), expected_ov=0)
    item = await users.get_version(r.id, done.ov)
    assert item is not None and item.data == {"email": "a@x", "balance": "1.50"}


def test_update_requires_expected_ov_and_the_docs_say_why() -> None:
    params = inspect.signature(Collection.update).parameters
    assert params["expected_ov"].default is inspect.Parameter.empty
    for optional in (Collection.delete, Collection.enrich, Collection.restore_object):
        assert inspect.signature(optional).parameters["expected_ov"].default is None
    assert "lost" in (Collection.update.__doc__ or "")
    assert "optional" in (Collection.delete.__doc__ or "")
    assert "optional" in (Collection.restore_object.__doc__ or "")
