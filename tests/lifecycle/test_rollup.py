"""Rollup of the live version index: everything stays readable, nothing is lost."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chronos_async import Chronos, Collection
from chronos_async._jsonpatch import apply_patch
from chronos_async._models import from_us, to_us
from chronos_async.lifecycle import iter_all_versions
from chronos_async.lifecycle._archive import Archive
from chronos_async.lifecycle._rollup import rollup_record, rule_for
from tests.conftest import MakeConfig

pytestmark = pytest.mark.timeout(120)

RETAIN_50 = {"retention": {"enabled": True, "ver": {"enabled": True, "max_versions": 50}}}


async def _write_history(users: Collection, n: int) -> tuple[str, list[tuple[int, dict[str, Any]]]]:
    """A record with ``n`` versions; the model: (commit time µs, data) per ov."""
    data: dict[str, Any] = {"email": "a@x", "n": 0}
    r = await users.create(data, actor="t", reason="seed")
    model = [(to_us(r.at), data)]
    for i in range(1, n):
        data = {"email": "a@x", "n": i, "even": i % 2 == 0}
        r = await users.update(r.id, data, expected_ov=i - 1)
        model.append((to_us(r.at), data))
    return r.id, model


async def _live_count(users: Collection, item_id: str) -> int:
    scope = users._scope
    return await scope.repo.versions.count_documents({"t": scope.t, "id": item_id})


async def test_thousand_versions_under_max_versions_50(
    make_config: MakeConfig, db_name: str
) -> None:
    config = make_config("s3", **RETAIN_50)
    async with Chronos(config) as chronos:
        users = chronos.collection("users", db=db_name)
        item_id, model = await _write_history(users, 1000)
        report = await chronos.admin.rollup_now(db=db_name, collection="users")
        assert report.versions_rolled == 950
        assert report.index_entries_removed == 950
        assert report.failed == ()
        assert await _live_count(users, item_id) == 50

        # every version readable, with its commit time
        checks = []
        for start in range(0, 1000, 25):
            batch = range(start, start + 25)
            checks.extend(await asyncio.gather(*(users.get_version(item_id, ov) for ov in batch)))
        for ov, item in enumerate(checks):
            assert item is not None and item.ov == ov
            assert item.data == model[ov][1]
            assert item.updated_at == from_us(model[ov][0])

        # as-of at 20 random times (and before creation) matches the model
        rng = random.Random(7)
        first, last = model[0][0], model[-1][0]
        assert await users.get_as_of(item_id, from_us(first - 1)) is None
        for _ in range(20):
            t = rng.randint(first, last + 1000)
            expected = max(ov for ov, (at, _) in enumerate(model) if at <= t)
            got = await users.get_as_of(item_id, from_us(t))
            assert got is not None and got.ov == expected and got.data == model[expected][1]

        # history walks across the boundary, newest first, every ov once
        infos = [v async for v in users.history(item_id)]
        assert [v.ov for v in infos] == list(range(999, -1, -1))
        assert [to_us(v.at) for v in reversed(infos)] == [at for at, _ in model]
        # diffs across the boundary
        for a, b in ((3, 998), (949, 950), (10, 11), (999, 0)):
            assert apply_patch(model[a][1], await users.diff(item_id, a, b)) == model[b][1]
        # the iterator for other subsystems: every version in ov order
        all_docs = [d async for d in iter_all_versions(users._scope, item_id)]
        assert [d["ov"] for d in all_docs] == list(range(1000))
        assert [d["at"] for d in all_docs] == [at for at, _ in model]

        # restorable: by ov and by time, from rolled-up versions
        for ov in (0, 17, 500, 949):
            r = await users.restore_object(item_id, ov=ov)
            latest = await users.get_latest(item_id)
            assert latest is not None and latest.data == model[ov][1] and r.ov == latest.ov
        r = await users.restore_object(item_id, at=from_us(model[123][0]))
        assert (await users.get_latest(item_id)).data == model[123][1]  # type: ignore[union-attr]
        rep = await users.restore_collection(at=from_us(model[300][0]))
        assert rep.restored == (item_id,)
        assert (await users.get_latest(item_id)).data == model[300][1]  # type: ignore[union-attr]

        # idempotent: rerun rolls up exactly the versions added since (none beyond 50)
        again = await chronos.admin.rollup_now(db=db_name, collection="users")
        assert again.versions_rolled == 6 and again.failed == ()
        again = await chronos.admin.rollup_now(db=db_name, collection="users")
        assert again.versions_rolled == 0 and again.manifests_written == 0
        verify = await chronos.admin.verify(db=db_name, collection="users")
        assert verify.ok, verify.problems[:5]
        assert verify.counts["versions"] + verify.counts["rolled_up_versions"] == 1006


async def test_rollup_while_eight_writers_write(make_config: MakeConfig, db_name: str) -> None:
    config = make_config("s3", **RETAIN_50)
    async with Chronos(config) as chronos:
        users = chronos.collection("users", db=db_name)
        ids = [(await users.create({"email": f"{i}@x", "n": 0})).id for i in range(8)]
        written: dict[str, list[dict[str, Any]]] = {
            i: [{"email": f"{k}@x", "n": 0}] for k, i in enumerate(ids)
        }
        stop = asyncio.Event()

        async def writer(k: int) -> None:
            item_id = ids[k]
            for n in range(1, 140):
                data = {"email": f"{k}@x", "n": n}
                await users.update(item_id, data, expected_ov=n - 1)
                written[item_id].append(data)
            stop.set()

        async def roller() -> int:
            rolled = 0
            while not stop.is_set():
                rolled += (
                    await chronos.admin.rollup_now(db=db_name, collection="users")
                ).versions_rolled
            return rolled

        results = await asyncio.gather(*(writer(k) for k in range(8)), roller())
        assert results[-1] > 0
        await chronos.admin.rollup_now(db=db_name, collection="users")
        for item_id, datas in written.items():
            assert await _live_count(users, item_id) == 50
            all_docs = [d async for d in iter_all_versions(users._scope, item_id)]
            assert [d["ov"] for d in all_docs] == list(range(len(datas)))
            for ov in (0, 45, 88, len(datas) - 1):
                item = await users.get_version(item_id, ov)
                assert item is not None and item.data == datas[ov]
        verify = await chronos.admin.verify(db=db_name, collection="users")
        assert verify.ok, verify.problems[:5]


async def test_resume_after_crash_between_manifest_and_index_delete(
    make_config: MakeConfig, db_name: str
) -> None:
    config = make_config("local", **RETAIN_50)
    async with Chronos(config) as chronos:
        users = chronos.collection("users", db=db_name)
        item_id, model = await _write_history(users, 120)
        scope = users._scope
        archive = Archive.of(scope.repo, scope.store)
        await archive.catalog.ensure_indexes()

        class Crash(Exception):
            pass

        async def crash(point: str, hid: str) -> None:
            raise Crash(point)

        with pytest.raises(Crash):
            await rollup_record(
                archive,
                scope.t,
                item_id,
                rule=rule_for(config, "users"),
                period="daily",
                now=to_us(datetime.now(UTC)),
                hook=crash,
            )
        # manifests written, index untouched: both hold the versions, reads still work
        assert await _live_count(users, item_id) == 120
        assert len(await archive.catalog.for_record(scope.t, item_id)) >= 1
        assert (await users.get_version(item_id, 5)).data == model[5][1]  # type: ignore[union-attr]
        # prune finishes the interrupted rollup (index entries the manifests hold)
        pruned = await chronos.admin.prune_now(db=db_name, collection="users")
        assert pruned.index_entries_removed == 70
        assert await _live_count(users, item_id) == 50
        report = await chronos.admin.rollup_now(db=db_name, collection="users")
        assert report.versions_rolled == 0
        for ov in range(120):
            assert (await users.get_version(item_id, ov)).data == model[ov][1]  # type: ignore[union-attr]
        verify = await chronos.admin.verify(db=db_name, collection="users")
        assert verify.ok, verify.problems[:5]


async def test_expire_removes_bytes_and_keeps_the_rest(
    make_config: MakeConfig, db_name: str
) -> None:
    config = make_config("local", **RETAIN_50)
    async with Chronos(config) as chronos:
        users = chronos.collection("users", db=db_name)
        item_id, model = await _write_history(users, 100)
        # a restore reuses the payload of ov=2: that payload must survive expiry of ov=2
        await users.restore_object(item_id, ov=2)
        await chronos.admin.rollup_now(db=db_name, collection="users")
        before = from_us(model[60][0])
        report = await chronos.admin.expire(
            db=db_name, collection="users", before=before, keep_last=5
        )
        assert report.versions_removed == 60
        assert report.payloads_removed == 59
        assert report.bytes_removed > 0
        assert await users.get_version(item_id, 10) is None
        assert await users.get_as_of(item_id, from_us(model[30][0])) is None
        for ov in range(60, 100):
            assert (await users.get_version(item_id, ov)).data == model[ov][1]  # type: ignore[union-attr]
        assert (await users.get_latest(item_id)).data == model[2][1]  # type: ignore[union-attr]
        again = await chronos.admin.expire(
            db=db_name, collection="users", before=before, keep_last=5
        )
        assert again.versions_removed == 0
        verify = await chronos.admin.verify(db=db_name, collection="users")
        problems = [p for p in verify.problems if p.kind != "ov_gap"]
        assert not problems, problems[:5]


async def test_iter_all_versions_of_a_record_never_rolled_up(users: Collection) -> None:
    r = await users.create({"email": "x@y"})
    await users.update(r.id, {"email": "z@y"}, expected_ov=0)
    docs = [d async for d in iter_all_versions(users._scope, r.id)]
    assert [d["ov"] for d in docs] == [0, 1]
    assert [d async for d in iter_all_versions(users._scope, "missing")] == []
    assert timedelta(0) <= from_us(docs[1]["at"]) - from_us(docs[0]["at"])
