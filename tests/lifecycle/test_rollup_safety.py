"""Rollup next to the other operators: reconcile, packs, hard delete, verify, the
background service."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from chronos_async import Chronos, Collection
from chronos_async._scope import now_us
from chronos_async.lifecycle._archive import Archive
from chronos_async.lifecycle._service import RollupService
from chronos_async.meta._rollup import LifecycleLease
from tests.conftest import MakeConfig

RETAIN_5 = {"retention": {"enabled": True, "ver": {"enabled": True, "max_versions": 5}}}


async def _history(users: Collection, n: int, tag: str = "a") -> tuple[str, list[dict[str, Any]]]:
    datas = [{"email": f"{tag}@x", "n": i, "pad": "x" * 40} for i in range(n)]
    r = await users.create(datas[0])
    for i in range(1, n):
        r = await users.update(r.id, datas[i], expected_ov=i - 1)
    return r.id, datas


async def test_reconcile_keeps_payloads_only_manifests_refer_to(
    make_config: MakeConfig, db_name: str
) -> None:
    async with Chronos(make_config("local", **RETAIN_5)) as chronos:
        users = chronos.collection("users", db=db_name)
        item_id, datas = await _history(users, 30)
        await chronos.admin.rollup_now(db=db_name, collection="users")
        report = await chronos.admin.reconcile(db=db_name, collection="users", grace_seconds=0)
        assert report.orphans_removed == 0
        for ov in range(30):
            assert (await users.get_version(item_id, ov)).data == datas[ov]  # type: ignore[union-attr]
        # the last check of reconcile itself, by key: a rolled-up payload is referenced
        scope = users._scope
        cat = (await Archive.of(scope.repo, scope.store).catalog.for_record(scope.t, item_id))[0]
        keys = [str(span[0]) for span in cat["spans"]]
        clients = [b.client for b in chronos.backends]
        from chronos_async._reconcile import referenced_keys

        assert await referenced_keys(clients, keys) == set(keys)
        assert (await chronos.admin.verify(db=db_name, collection="users", grace_seconds=0)).ok


async def test_packed_payloads_roll_up_and_stay_readable(
    make_config: MakeConfig, db_name: str
) -> None:
    config = make_config("local", write_optimization={"batch_s3": True}, **RETAIN_5)
    async with Chronos(config) as chronos:
        users = chronos.collection("users", db=db_name)
        results = await asyncio.gather(*(_history(users, 25, tag=str(k)) for k in range(6)))
        report = await chronos.admin.rollup_now(db=db_name, collection="users")
        assert report.versions_rolled == 6 * 20
        for item_id, datas in results:
            for ov in (0, 7, 19, 24):
                assert (await users.get_version(item_id, ov)).data == datas[ov]  # type: ignore[union-attr]
        verify = await chronos.admin.verify(db=db_name, collection="users")
        assert verify.ok, verify.problems[:3]


async def test_hard_delete_removes_manifests_too(make_config: MakeConfig, db_name: str) -> None:
    config = make_config("local", hard_delete_enabled=True, **RETAIN_5)
    async with Chronos(config) as chronos:
        users = chronos.collection("users", db=db_name)
        item_id, _ = await _history(users, 20)
        await chronos.admin.rollup_now(db=db_name, collection="users")
        scope = users._scope
        archive = Archive.of(scope.repo, scope.store)
        cats = await archive.catalog.for_record(scope.t, item_id)
        assert cats
        await users.delete(item_id, hard=True)
        assert await archive.catalog.for_record(scope.t, item_id) == []
        prefix = f"_/{db_name}/users/{item_id}/"
        assert [i async for i in scope.store.list(prefix, role="backups")] == []
        assert [i async for i in scope.store.list(prefix)] == []


async def test_verify_reports_a_damaged_manifest(make_config: MakeConfig, db_name: str) -> None:
    async with Chronos(make_config("mongo", **RETAIN_5)) as chronos:
        users = chronos.collection("users", db=db_name)
        item_id, _ = await _history(users, 12)
        await chronos.admin.rollup_now(db=db_name, collection="users")
        scope = users._scope
        cat = (await Archive.of(scope.repo, scope.store).catalog.for_record(scope.t, item_id))[0]
        await scope.repo.db["users_rollup"].update_one(
            {"_id": cat["_id"]}, {"$set": {"sha256": "0" * 64}}
        )
        verify = await chronos.admin.verify(db=db_name, collection="users")
        kinds = {p.kind for p in verify.problems}
        assert "rollup_manifest" in kinds and "ov_gap" in kinds


async def test_background_rollup_runs_under_a_lease(make_config: MakeConfig, db_name: str) -> None:
    config = make_config(
        "local",
        rollup={"enabled": True, "auto_schedule": True, "interval_seconds": 1},
        deadlines={"close_ms": 2000},
        **RETAIN_5,
    )
    async with Chronos(config) as chronos:
        users = chronos.collection("users", db=db_name)
        item_id, datas = await _history(users, 15)
        scope = users._scope
        for _ in range(100):
            if await scope.repo.versions.count_documents({"id": item_id}) == 5:
                break
            await asyncio.sleep(0.1)
        assert await scope.repo.versions.count_documents({"id": item_id}) == 5
        assert (await users.get_version(item_id, 0)).data == datas[0]  # type: ignore[union-attr]
        # another process holding the lease keeps this one out, until it expires
        lease = LifecycleLease(chronos.backends[0].client["chronos_system"], "rollup")
        service = RollupService(chronos)
        for _ in range(50):
            if await lease.take("someone-else", now_us(), 60 * 10**6):
                break
            await asyncio.sleep(0.1)  # the instance's own round holds it a moment
        assert not await service.run_once()
        assert not await lease.take(chronos.owner, now_us(), 10**6)
        await lease.release("someone-else")
        assert await service.run_once()
    started = time.monotonic()
    # closed within the bound, and the lease was given back
    assert not chronos.is_open
    assert time.monotonic() - started < 5


async def test_two_processes_rolling_up_at_once_lose_nothing(
    make_config: MakeConfig, db_name: str
) -> None:
    config = make_config("local", **RETAIN_5)
    async with Chronos(config) as one, Chronos(config) as two:
        users = one.collection("users", db=db_name)
        histories = await asyncio.gather(*(_history(users, 40, tag=str(k)) for k in range(4)))
        reports = await asyncio.gather(
            *(c.admin.rollup_now(db=db_name, collection="users") for c in (one, two, one, two))
        )
        assert all(r.failed == () for r in reports), [r.failed for r in reports]
        assert sum(r.index_entries_removed for r in reports) == 4 * 35
        other = two.collection("users", db=db_name)
        for item_id, datas in histories:
            infos = [v async for v in other.history(item_id)]
            assert [v.ov for v in infos] == list(range(39, -1, -1))
            for ov in range(40):
                assert (await other.get_version(item_id, ov)).data == datas[ov]  # type: ignore[union-attr]
        assert (await one.admin.verify(db=db_name, collection="users")).ok
        pruned = await two.admin.prune_now(db=db_name, collection="users", grace_seconds=0)
        assert pruned.index_entries_removed == 0
