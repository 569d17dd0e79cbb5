"""diff between versions, history with diffs, lineage walks."""

from __future__ import annotations

import pytest

from chronos_async import Collection, NotFoundError, ValidationError
from chronos_async._jsonpatch import apply_patch


async def _evolve(users: Collection) -> tuple[str, list[dict[str, object]]]:
    datas: list[dict[str, object]] = [
        {"email": "a@x", "tags": ["a"], "profile": {"name": "A"}},
        {"email": "a@x", "tags": ["a", "b"], "profile": {"name": "A", "age": 3}},
        {"email": "b@x", "tags": ["b"], "profile": {"name": "B/~"}, "new": [1, {"x": None}]},
    ]
    r = await users.create(datas[0])
    await users.update(r.id, datas[1], expected_ov=0)
    await users.update(r.id, datas[2], expected_ov=1)
    await users.delete(r.id)
    return r.id, datas


async def test_diff_turns_one_version_into_another(users: Collection) -> None:
    item_id, datas = await _evolve(users)
    for a in range(3):
        for b in range(3):
            ops = await users.diff(item_id, a, b)
            assert apply_patch(datas[a], ops) == datas[b]
    assert await users.diff(item_id, 1, 1) == []
    assert {"op": "replace", "path": "/email", "value": "b@x"} in await users.diff(item_id, 0, 2)
    with pytest.raises(NotFoundError):
        await users.diff(item_id, 0, 9)
    with pytest.raises(ValidationError):
        await users.diff(item_id, -1, 0)


async def test_history_with_diffs_replays_every_version(users: Collection) -> None:
    item_id, datas = await _evolve(users)
    versions = [v async for v in users.history(item_id, include_diff=True)]
    assert [v.ov for v in versions] == [3, 2, 1, 0]
    assert versions[0].diff == ()  # the deletion kept the data
    replayed: dict[str, object] = {}
    for version in reversed(versions):
        assert version.diff is not None
        replayed = apply_patch(replayed, list(version.diff))
        expected = datas[min(version.ov, 2)]
        assert replayed == expected
    plain = [v async for v in users.history(item_id)]
    assert all(v.diff is None for v in plain)


async def test_lineage_walks_to_the_origin(users: Collection) -> None:
    root = await users.create({"email": "root@x"})
    child = await users.create({"email": "child@x"}, parent_id=root.id)
    grandchild = await users.create({"email": "gc@x"}, parent_id=child.id)
    chain = await users.lineage(grandchild.id)
    assert [i.id for i in chain] == [child.id, root.id]
    assert await users.lineage(root.id) == []
    await users.delete(child.id)
    assert [i.id for i in await users.lineage(grandchild.id)] == [child.id, root.id]
    external = await users.create({"email": "e@x"}, parent_id="elsewhere:1")
    assert await users.lineage(external.id) == []
    with pytest.raises(NotFoundError):
        await users.lineage("missing")


async def test_lineage_stops_at_a_cycle(users: Collection) -> None:
    await users.create({"email": "b@x"}, id="b", parent_id="a", origin_id="a")
    await users.create({"email": "a@x"}, id="a", parent_id="b", origin_id="b")
    assert [i.id for i in await users.lineage("a")] == ["b"]


async def test_missing_versions_read_none_but_diff_raises_naming_the_ov(
    users: Collection,
) -> None:
    # One rule: a read answers None, an operation that needs the version raises.
    item_id, _ = await _evolve(users)
    assert await users.get_version(item_id, 999) is None
    with pytest.raises(NotFoundError, match=r"to_ov=999.*newest is ov=3") as info:
        await users.diff(item_id, 0, 999)
    assert (info.value.id, info.value.ov) == (item_id, 999)
    with pytest.raises(NotFoundError, match=r"from_ov=7") as info:
        await users.diff(item_id, 7, 0)
    assert info.value.ov == 7
    assert await users.get_version("no-such-record", 0) is None
    with pytest.raises(NotFoundError, match="no record") as info:
        await users.diff("no-such-record", 0, 1)
    assert (info.value.id, info.value.ov) == ("no-such-record", None)
