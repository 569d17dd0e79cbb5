"""restore_object and restore_collection: append-only, convergent, proportional to changes."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chronos_async import (
    Chronos,
    Collection,
    NotFoundError,
    RestoreInterruptedError,
    RestoreReport,
    ValidationError,
)
from chronos_async._keys import head_id
from tests.support import footprint


async def test_restore_object_appends_a_copy_of_the_target(users: Collection) -> None:
    r = await users.create({"email": "a@x", "v": 0})
    for v in (1, 2, 3):
        await users.update(r.id, {"email": "a@x", "v": v}, expected_ov=v - 1)
    _, _, blobs_before = await footprint(users)
    back = await users.restore_object(r.id, ov=1, actor="ops", reason="undo")
    assert back.ov == 4
    item = await users.get_latest(r.id)
    assert item is not None and item.data == {"email": "a@x", "v": 1}
    [newest, *_] = [v async for v in users.history(r.id)]
    assert (newest.op, newest.restored_from, newest.actor) == ("restore", 1, "ops")
    # the target's payload is reused, not copied
    assert (await footprint(users))[2] == blobs_before
    scope = users._scope
    head = await scope.repo.find_head(head_id(None, r.id))
    v1 = await users.get_version(r.id, 1)
    assert head is not None and v1 is not None
    assert (await users.get_version(r.id, 4)).data == v1.data  # type: ignore[union-attr]


async def test_restore_object_by_time(users: Collection) -> None:
    r0 = await users.create({"email": "a@x", "v": 0})
    r1 = await users.update(r0.id, {"email": "a@x", "v": 1}, expected_ov=0)
    await users.update(r0.id, {"email": "a@x", "v": 2}, expected_ov=1)
    await users.restore_object(r0.id, at=r1.at + timedelta(microseconds=1))
    assert (await users.get_latest(r0.id)).data["v"] == 1  # type: ignore[union-attr]
    with pytest.raises(NotFoundError):
        await users.restore_object(r0.id, at=r0.at - timedelta(seconds=5))


async def test_restore_undeletes_and_can_delete(users: Collection) -> None:
    r = await users.create({"email": "a@x"})
    d = await users.delete(r.id)
    assert await users.get_latest(r.id) is None
    back = await users.restore_object(r.id, ov=0, reason="mistake")
    item = await users.get_latest(r.id)
    assert item is not None and not item.deleted and item.ov == back.ov
    await users.update(r.id, {"email": "b@x"}, expected_ov=back.ov)  # writable again
    await users.restore_object(r.id, ov=d.ov)
    gone = await users.get_latest(r.id, include_deleted=True)
    assert gone is not None and gone.deleted and gone.data == {"email": "a@x"}


async def test_restore_object_refusals(users: Collection) -> None:
    r = await users.create({"email": "a@x"})
    with pytest.raises(ValidationError):
        await users.restore_object(r.id)
    with pytest.raises(ValidationError):
        await users.restore_object(r.id, ov=0, at="2026-01-01T00:00:00Z")
    with pytest.raises(NotFoundError):
        await users.restore_object(r.id, ov=5)
    with pytest.raises(NotFoundError):
        await users.restore_object("missing", ov=0)
    same = await users.restore_object(r.id, ov=0)
    assert same.changed is False and same.ov == 0


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    values=st.lists(
        st.dictionaries(st.sampled_from("abc"), st.integers(0, 3)), min_size=1, max_size=5
    ),
    pick=st.integers(min_value=0),
)
async def test_restore_to_k_then_read_gives_version_k(
    users: Collection, values: list[dict[str, int]], pick: int
) -> None:
    r = await users.create({"email": "p@x", **values[0]})
    ov = 0
    for value in values[1:]:
        ov = (await users.update(r.id, {"email": "p@x", **value}, expected_ov=None)).ov
    k = pick % (ov + 1)
    target = await users.get_version(r.id, k)
    assert target is not None
    await users.restore_object(r.id, ov=k)
    latest = await users.get_latest(r.id)
    assert latest is not None and latest.data == target.data


async def _snapshot(handle: Collection, ids: list[str]) -> dict[str, Any]:
    items = await asyncio.gather(*(handle.get_latest(i, include_deleted=True) for i in ids))
    return {
        i: (None if x is None else (x.deleted, x.data)) for i, x in zip(ids, items, strict=True)
    }


async def test_restore_collection_to_cv_and_again(users: Collection) -> None:
    ids = [(await users.create({"email": f"{i}@x", "v": 0})).id for i in range(10)]
    scope = users._scope
    target_cv = await scope.repo.current_cv(scope.t)
    target = await _snapshot(users, ids)
    for i in ids[:3]:
        await users.update(i, {"email": "changed@x", "v": 1}, expected_ov=0)
    for i in ids[3:5]:
        await users.delete(i)
    await users.enrich(ids[5], {"v": 9})
    await users.restore_object(ids[5], ov=0)  # changed, then back: already at target
    new = [(await users.create({"email": f"new{i}@x"})).id for i in range(2)]
    seen: list[tuple[int, int]] = []
    report = await users.restore_collection(
        cv=target_cv, reason="roll back", progress=lambda d, t: seen.append((d, t))
    )
    assert sorted(report.restored) == sorted(ids[:3])
    assert sorted(report.undeleted) == sorted(ids[3:5])
    assert sorted(report.deleted) == sorted(new)
    assert report.unchanged == (ids[5],)
    assert report.failed == ()
    assert seen[-1] == (8, 8) and len(seen) == 8
    assert await _snapshot(users, ids) == target
    assert await asyncio.gather(*(users.get_latest(n) for n in new)) == [None, None]
    again = await users.restore_collection(cv=target_cv)
    assert again.restored == again.deleted == again.undeleted == ()
    assert await _snapshot(users, ids) == target


async def test_restore_collection_to_a_time(users: Collection) -> None:
    a = await users.create({"email": "a@x", "v": 0})
    b = await users.create({"email": "b@x", "v": 0})
    moment = b.at
    await users.update(a.id, {"email": "a@x", "v": 1}, expected_ov=0)
    c = await users.create({"email": "c@x"})
    report = await users.restore_collection(at=moment.isoformat())
    assert report.restored == (a.id,) and report.deleted == (c.id,)
    assert report.target_at == moment
    assert (await users.get_latest(a.id)).data["v"] == 0  # type: ignore[union-attr]
    with pytest.raises(ValidationError):
        await users.restore_collection()
    with pytest.raises(ValidationError):
        await users.restore_collection(cv=1, at=moment)
    with pytest.raises(ValidationError):
        await users.restore_collection(cv=1, concurrency=0)


async def test_interrupted_collection_restore_converges(users: Collection) -> None:
    ids = [(await users.create({"email": f"{i}@x", "v": 0})).id for i in range(12)]
    scope = users._scope
    target_cv = await scope.repo.current_cv(scope.t)
    target = await _snapshot(users, ids)
    for i in ids:
        await users.update(i, {"email": "x@x", "v": 1}, expected_ov=0)
    halfway = asyncio.Event()

    def progress(done: int, total: int) -> None:
        if done == 4:
            halfway.set()

    task = asyncio.create_task(
        users.restore_collection(cv=target_cv, concurrency=2, progress=progress)
    )
    await halfway.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    after_cancel = await _snapshot(users, ids)
    already = {i for i in ids if after_cancel[i] == target[i]}
    # the interrupted run restored at least the 4 records it reported, and not all 12
    assert 4 <= len(already) < 12, after_cancel
    report = await users.restore_collection(cv=target_cv)
    assert report.failed == ()
    assert set(report.unchanged) == already, report
    assert set(report.restored) == set(ids) - already, report
    assert await _snapshot(users, ids) == target


async def test_collection_restore_work_is_proportional_to_changes(
    make_config: Any, db_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with Chronos(make_config("local")) as chronos:
        docs = chronos.collection("docs", db=db_name)
        ids: list[str] = []
        for start in range(0, 2000, 200):
            batch = await asyncio.gather(
                *(docs.create({"n": n}) for n in range(start, start + 200))
            )
            ids.extend(r.id for r in batch)
        scope = docs._scope
        target_cv = await scope.repo.current_cv(scope.t)
        changed = ids[::40]  # 50 records
        await asyncio.gather(*(docs.update(i, {"n": -1}, expected_ov=0) for i in changed))
        created = [(await docs.create({"n": "new"})).id for _ in range(5)]

        counts = {"target_lookups": 0, "version_writes": 0, "leases": 0, "other_reads": 0}
        repo = scope.repo

        def counting(name: str, method: Any) -> Any:
            async def wrapper(*args: Any, **kwargs: Any) -> Any:
                counts[name] += 1
                return await method(*args, **kwargs)

            return wrapper

        monkeypatch.setattr(repo, "version_at_cv", counting("target_lookups", repo.version_at_cv))
        monkeypatch.setattr(repo, "insert_version", counting("version_writes", repo.insert_version))
        monkeypatch.setattr(repo, "take_lease", counting("leases", repo.take_lease))
        monkeypatch.setattr(repo, "find_head", counting("other_reads", repo.find_head))
        monkeypatch.setattr(repo, "find_version", counting("other_reads", repo.find_version))
        report = await docs.restore_collection(cv=target_cv)
        assert len(report.restored) == 50 and sorted(report.deleted) == sorted(created)
        # per changed record: one target lookup, one lease (+ head read), one cv, one
        # version insert, one head move; nothing is read twice
        assert counts == {
            "target_lookups": 55,
            "version_writes": 55,
            "leases": 55,
            "other_reads": 0,
        }
        latest = await asyncio.gather(*(docs.get_latest(i) for i in changed))
        assert all(x is not None and x.data["n"] != -1 for x in latest)


async def test_a_progress_callback_with_the_wrong_signature_is_refused_up_front(
    users: Collection,
) -> None:
    r = await users.create({"email": "a@x"})
    target = (await users.get_latest(r.id)).cv  # type: ignore[union-attr]
    await users.update(r.id, {"email": "b@x"}, expected_ov=0)
    before = await footprint(users)
    for wrong in (lambda: None, lambda done: None, lambda a, b, c: None, 42):
        with pytest.raises(ValidationError):
            await users.restore_collection(cv=target, progress=wrong)  # type: ignore[arg-type]
    assert await footprint(users) == before


@pytest.mark.parametrize("asynchronous", [False, True])
async def test_a_failing_progress_callback_stops_cleanly_with_a_report(
    users: Collection, asynchronous: bool
) -> None:
    ids = [(await users.create({"email": f"{n}@x"})).id for n in range(12)]
    target = (await users.get_latest(ids[-1])).cv  # type: ignore[union-attr]
    for i in ids:
        await users.update(i, {"email": "changed@x"}, expected_ov=0)
    calls = 0

    def failing(done: int, total: int) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RuntimeError("progress bar crashed")

    async def failing_async(done: int, total: int) -> None:
        failing(done, total)

    with pytest.raises(RestoreInterruptedError) as info:
        await users.restore_collection(
            cv=target, concurrency=2, progress=failing_async if asynchronous else failing
        )
    assert isinstance(info.value.__cause__, RuntimeError)
    report = info.value.report
    assert isinstance(report, RestoreReport)
    done = set(report.restored)
    assert report.examined == len(done) >= 3 and report.not_started == len(ids) - len(done)
    for i in ids:  # exactly the reported records were restored, the others untouched
        item = await users.get_latest(i)
        assert item is not None
        assert (item.data["email"] != "changed@x") == (i in done)
    again = await users.restore_collection(cv=target)
    assert sorted(again.restored) == sorted(set(ids) - done)
    assert sorted(again.unchanged) == sorted(done)


async def test_restore_to_a_missing_version_names_it(users: Collection) -> None:
    r = await users.create({"email": "a@x"})
    before = await footprint(users)
    with pytest.raises(NotFoundError, match=r"ov=999.*newest is ov=0") as info:
        await users.restore_object(r.id, ov=999)
    assert (info.value.id, info.value.ov) == (r.id, 999)
    assert await footprint(users) == before


@pytest.mark.parametrize(
    "naive", [datetime(2026, 3, 1), "2026-03-01T00:00:00", "2026-03-01"], ids=repr
)
async def test_restores_refuse_naive_times(users: Collection, naive: datetime | str) -> None:
    r = await users.create({"email": "a@x"})
    before = await footprint(users)
    with pytest.raises(ValidationError, match="time zone"):
        await users.restore_object(r.id, at=naive)
    with pytest.raises(ValidationError, match="time zone"):
        await users.restore_collection(at=naive)
    assert await footprint(users) == before
