"""enrich: deep merge as one version, provenance by function id, retries, no-op detection."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from chronos_async import (
    Chronos,
    Collection,
    ItemDeletedError,
    NotFoundError,
    ValidationError,
    VersionConflictError,
)
from tests.support import footprint


async def test_enrich_merges_into_one_new_version(users: Collection) -> None:
    r = await users.create(
        {"email": "a@x", "tags": ["a"], "profile": {"name": "A", "age": 1}, "note": "x"}
    )
    e = await users.enrich(
        r.id,
        {"tags": ["b", "a"], "profile": {"age": 2, "city": "Oslo"}, "note": None},
        function_id="scorer@v1",
        actor="bot",
        reason="scoring",
    )
    assert (e.ov, e.changed) == (1, True)
    item = await users.get_latest(r.id)
    assert item is not None
    assert item.data == {
        "email": "a@x",
        "tags": ["a", "b"],
        "profile": {"name": "A", "age": 2, "city": "Oslo"},
        "note": None,
    }
    assert item.function_ids == ("scorer@v1",)
    assert (item.actor, item.reason) == ("bot", "scoring")
    [latest, *_] = [v async for v in users.history(r.id)]
    assert (latest.op, latest.function_id) == ("enrich", "scorer@v1")


async def test_a_list_of_patches_is_applied_in_order_as_one_version(users: Collection) -> None:
    r = await users.create({"email": "a@x", "n": 0, "tags": []})
    e = await users.enrich(
        r.id, [{"n": 1, "tags": ["x"]}, {"n": 2, "tags": ["y", "x"]}, {"extra": True}]
    )
    assert e.ov == 1
    item = await users.get_latest(r.id)
    assert item is not None and item.data == {
        "email": "a@x",
        "n": 2,
        "tags": ["x", "y"],
        "extra": True,
    }
    assert [v.ov async for v in users.history(r.id)] == [1, 0]


async def test_function_ids_union_and_lineage_survive_enrich_and_update(users: Collection) -> None:
    root = await users.create({"email": "root@x"})
    r = await users.create({"email": "a@x"}, parent_id=root.id, actor="creator")
    await users.enrich(r.id, {"s": 1}, function_id="f1")
    await users.enrich(r.id, {"s": 2}, function_id="f2")
    await users.enrich(r.id, {"s": 3}, function_id="f1")
    await users.update(r.id, {"email": "b@x"}, expected_ov=3)
    item = await users.get_latest(r.id)
    assert item is not None
    assert item.function_ids == ("f1", "f2")
    assert (item.parent_id, item.origin_id) == (root.id, root.id)
    assert item.created_at == r.at


async def test_enrich_updates_indexed_props(users: Collection) -> None:
    r = await users.create({"email": "a@x", "status": "new"})
    await users.enrich(r.id, {"status": "active"})
    page = await users.list_by_meta({"status": "active"})
    assert [i.id for i in page.items] == [r.id]


async def test_enrich_refusals_write_nothing(users: Collection) -> None:
    r = await users.create({"email": "a@x"})
    before = await footprint(users)
    for bad in ("text", [1, 2], [{"ok": 1}, "no"], {"x": float("nan")}, {1: "key"}):
        with pytest.raises(ValidationError):
            await users.enrich(r.id, bad)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        await users.enrich(r.id, {"email": ""})  # required indexed prop emptied
    with pytest.raises(VersionConflictError):
        await users.enrich(r.id, {"x": 1}, expected_ov=7)
    with pytest.raises(NotFoundError):
        await users.enrich("missing", {"x": 1})
    assert await footprint(users) == before
    await users.delete(r.id)
    with pytest.raises(ItemDeletedError):
        await users.enrich(r.id, {"x": 1})


async def test_concurrent_enrichers_all_land(users: Collection) -> None:
    r = await users.create({"email": "a@x", "tags": []})
    results = await asyncio.gather(
        *(users.enrich(r.id, {"tags": [f"t{i}"]}, function_id=f"f{i}") for i in range(12))
    )
    assert sorted(x.ov for x in results) == list(range(1, 13))
    item = await users.get_latest(r.id)
    assert item is not None
    assert sorted(item.data["tags"]) == sorted(f"t{i}" for i in range(12))
    assert sorted(item.function_ids) == sorted(f"f{i}" for i in range(12))


async def test_concurrent_enrich_from_two_instances(make_config: Any, db_name: str) -> None:
    config = make_config("local")
    async with Chronos(config) as one, Chronos(config) as two:
        a, b = one.collection("docs", db=db_name), two.collection("docs", db=db_name)
        r = await a.create({"tags": []})
        await asyncio.gather(
            *(h.enrich(r.id, {"tags": [i]}) for i, h in enumerate([a, b] * 6)),
        )
        item = await b.get_latest(r.id)
        assert item is not None and sorted(item.data["tags"]) == list(range(12))
        assert item.ov == 12


async def test_no_op_update_and_enrich_store_nothing(users: Collection) -> None:
    r = await users.create({"email": "a@x", "tags": ["a"], "n": 1})
    before = await footprint(users)
    same = await users.update(r.id, {"n": 1, "tags": ["a"], "email": "a@x"}, expected_ov=0)
    assert (same.ov, same.cv, same.changed) == (0, r.cv, False)
    contained = await users.enrich(r.id, {"tags": ["a"], "n": 1}, function_id="f")
    assert (contained.ov, contained.changed) == (0, False)
    assert await footprint(users) == before
    item = await users.get_latest(r.id)
    assert item is not None and item.function_ids == ()
    changed = await users.update(r.id, {"email": "a@x", "n": 2}, expected_ov=0)
    assert (changed.ov, changed.changed) == (1, True)


async def test_no_op_detection_can_be_turned_off(make_config: Any, db_name: str) -> None:
    config = make_config("local", collection_maps={"docs": {"no_op_detection": False}})
    async with Chronos(config) as chronos:
        docs = chronos.collection("docs", db=db_name)
        r = await docs.create({"a": 1})
        again = await docs.update(r.id, {"a": 1}, expected_ov=0)
        assert (again.ov, again.changed) == (1, True)
        merged = await docs.enrich(r.id, {"a": 1})
        assert (merged.ov, merged.changed) == (2, True)
