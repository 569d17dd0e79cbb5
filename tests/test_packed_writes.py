"""Group commit into packs (``write_optimization.batch_s3``) end to end, on SeaweedFS:
writes, reads by range, reuse by delete and restore, presigned URLs, verify, hard delete,
reconcile (orphan packs, compaction), and a pack moved under a restore in flight."""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import pytest

from chronos_async import Chronos, Collection, StorageError
from chronos_async._checkpoints import CheckpointInfo, Point
from chronos_async._keys import collection_prefix, head_id, version_id
from chronos_async._pack_admin import pack_settle_us, rewrite_pack
from chronos_async._rollforward import publish_claim
from chronos_async._scope import now_us
from chronos_async.storage._packs import is_pack_key

#: Small deadlines: a pack is settled (safe to rewrite) a few seconds after it is stored.
#: The commit window leaves a loaded CI machine room: 30 concurrent creates on one
#: nx-27017 once took over 200 ms (half of a 400 ms window) from claim to publication.
FAST = {"store_ms": 1000, "mongo_ms": 400, "commit_ms": 1000}
PAD = "p" * 20_000  # above the 16 KiB inline limit: every read goes to the store


def doc(i: int, tag: str = "v0") -> dict[str, Any]:
    return {"email": f"{i}@x", "tag": f"{tag}-{i}-marker", "pad": PAD}


@pytest.fixture
async def packed(make_config: Any) -> AsyncIterator[Chronos]:
    config = make_config(
        "s3",
        write_optimization={"batch_s3": True, "batch_window_ms": 20},
        deadlines=FAST,
        hard_delete_enabled=True,
    )
    async with Chronos(config) as chronos:
        yield chronos


async def stored_keys(chronos: Chronos, db: str) -> list[str]:
    store = chronos.backends[0].store
    return sorted([info.key async for info in store.list(collection_prefix(None, db, "users"))])


async def create_many(users: Collection, n: int, tag: str = "v0") -> list[str]:
    results = await asyncio.gather(*(users.create(doc(i, tag)) for i in range(n)))
    return [r.id for r in results]


async def settle(chronos: Chronos) -> None:
    """Wait until every pack written so far is settled (reconcile may rewrite it)."""
    await asyncio.sleep(pack_settle_us(chronos.config) / 1e6 + 0.2)


async def test_concurrent_writes_share_packs_and_read_back(packed: Chronos, db_name: str) -> None:
    users = packed.collection("users", db=db_name)
    ids = await create_many(users, 120)
    stats = packed.stats().packs
    keys = await stored_keys(packed, db_name)
    assert stats.packs >= 1 and stats.packed >= 60, stats
    assert len(keys) == stats.alone + stats.packs < 120  # fewer objects than payloads
    assert stats.puts_saved == 120 - len(keys)
    for i, item_id in enumerate(ids):  # every payload read back by its range, verified
        item = await users.get_latest(item_id)
        assert item is not None and item.data == doc(i)
    report = await packed.admin.verify(db_name, grace_seconds=0)
    assert report.ok, report.problems
    assert report.counts["packs"] == stats.packs
    assert report.counts["payloads_hashed"] == 120
    assert report.counts["pack_dead_bytes"] == 0  # every member is used


async def test_an_idle_writer_never_packs(packed: Chronos, db_name: str) -> None:
    users = packed.collection("users", db=db_name)
    for i in range(5):
        await users.create(doc(i))
    assert packed.stats().packs.packs == 0 and packed.stats().packs.alone == 5
    assert not any(is_pack_key(k) for k in await stored_keys(packed, db_name))


async def test_delete_and_restore_reuse_the_packed_location(packed: Chronos, db_name: str) -> None:
    users = packed.collection("users", db=db_name)
    ids = await create_many(users, 30)
    target = ids[7]
    head = await users._scope.repo.find_head(head_id(None, target))
    assert head is not None and head["offset"] is not None, "expected a packed payload"
    await users.update(target, doc(7, "v1"), expected_ov=0)
    await users.delete(target, expected_ov=1)
    await users.restore_object(target, ov=0)
    item = await users.get_latest(target)
    assert item is not None and item.data == doc(7)
    restored = await users._scope.repo.find_head(head_id(None, target))
    assert restored is not None
    assert (restored["key"], restored["offset"]) == (head["key"], head["offset"])
    assert (await packed.admin.verify(db_name, grace_seconds=0)).ok


async def test_a_packed_payload_gets_a_url_serving_exactly_it(
    packed: Chronos, db_name: str
) -> None:
    users = packed.collection("users", db=db_name)
    ids = await create_many(users, 30)
    packed_ids = []
    for item_id in ids:
        head = await users._scope.repo.find_head(head_id(None, item_id))
        if head is not None and head["offset"] is not None:
            packed_ids.append(item_id)
    item = await users.get_latest(packed_ids[0], presign=True, ttl_seconds=60)
    assert item is not None and "payload" in item.urls

    def fetch(url: str) -> bytes:
        with urllib.request.urlopen(url, timeout=10) as response:
            return bytes(response.read())

    body = await asyncio.to_thread(fetch, item.urls["payload"])
    head = await users._scope.repo.find_head(head_id(None, packed_ids[0]))
    assert head is not None
    assert body == await users._scope.store.get_range(
        str(head["key"]), offset=int(head["offset"]), length=int(head["length"])
    )
    assert body.startswith(b"{") and PAD.encode() in body
    # the copy it serves is referenced by its version: nothing to reconcile
    report = await packed.admin.verify(db_name, grace_seconds=0)
    assert report.ok, report.problems


async def test_hard_delete_removes_the_bytes_from_the_pack(packed: Chronos, db_name: str) -> None:
    users = packed.collection("users", db=db_name)
    ids = await create_many(users, 30, tag="secret")
    heads = [await users._scope.repo.find_head(head_id(None, i)) for i in ids]
    victim = next(i for i, h in zip(ids, heads, strict=True) if h and h["offset"] is not None)
    victim_doc = doc(ids.index(victim), "secret")
    await users.get_latest(victim, presign=True)  # a stand-alone copy exists too
    await users.delete(victim, hard=True)  # waits until its pack is settled, then rewrites it
    store = packed.backends[0].store
    marker = victim_doc["tag"].encode()
    for key in await stored_keys(packed, db_name):
        assert marker not in await store.get(key), f"{key} still holds the deleted payload"
    assert await users.get_latest(victim) is None
    for i, item_id in enumerate(ids):
        if item_id != victim:
            item = await users.get_latest(item_id)
            assert item is not None and item.data == doc(i, "secret")
    report = await packed.admin.verify(db_name, grace_seconds=0)
    assert report.ok, report.problems


async def test_reconcile_removes_dead_packs_and_compacts_sparse_ones(
    packed: Chronos, db_name: str
) -> None:
    users = packed.collection("users", db=db_name)
    doomed: set[int] = set(range(0, 40, 2))  # every other write fails after storing

    async def fail_some(point: Point, info: CheckpointInfo) -> None:
        if point == "stored" and int(info.id.removeprefix("r")) in doomed:
            raise StorageError("injected: the claim never happens", retryable=False)

    with packed.checkpoints.hook(fail_some):
        outcomes = await asyncio.gather(
            *(users.create(doc(i), id=f"r{i}") for i in range(40)), return_exceptions=True
        )
    failed = {i for i, o in enumerate(outcomes) if isinstance(o, StorageError)}
    assert failed == doomed
    before = await packed.admin.verify(db_name, grace_seconds=3600)
    dead = before.counts["pack_dead_bytes"]  # in packs that also hold live payloads
    assert before.ok and dead >= 5 * len(PAD), before.counts
    await settle(packed)
    done = await packed.admin.reconcile(db_name, grace_seconds=0, compact_below=0.9)
    assert done.packs_compacted >= 1 and done.pack_bytes_reclaimed >= dead, done
    after = await packed.admin.verify(db_name, grace_seconds=0)
    assert after.ok, after.problems
    assert after.counts.get("pack_dead_bytes", 0) == 0
    for i in range(40):
        item = await users.get_latest(f"r{i}")
        assert (item is None) if i in doomed else (item is not None and item.data == doc(i))


async def test_a_pack_of_withdrawn_writes_only_is_an_orphan(packed: Chronos, db_name: str) -> None:
    users = packed.collection("users", db=db_name)

    async def fail_all_but_first(point: Point, info: CheckpointInfo) -> None:
        if point == "stored" and info.id != "r0":
            raise StorageError("injected", retryable=False)

    with packed.checkpoints.hook(fail_all_but_first):
        await asyncio.gather(
            *(users.create(doc(i), id=f"r{i}") for i in range(20)), return_exceptions=True
        )
    keys = await stored_keys(packed, db_name)
    assert any(is_pack_key(k) for k in keys)
    report = await packed.admin.verify(db_name, grace_seconds=0)
    assert {p.kind for p in report.problems} == {"orphan_payload"}
    await settle(packed)
    done = await packed.admin.reconcile(db_name, grace_seconds=0)
    assert done.orphans_removed >= 1
    assert not any(is_pack_key(k) for k in await stored_keys(packed, db_name))
    assert (await packed.admin.verify(db_name, grace_seconds=0)).ok


async def test_a_restore_follows_a_pack_rewritten_under_it(packed: Chronos, db_name: str) -> None:
    users = packed.collection("users", db=db_name)
    ids = await create_many(users, 30)
    heads = [await users._scope.repo.find_head(head_id(None, i)) for i in ids]
    target = next(i for i, h in zip(ids, heads, strict=True) if h and h["offset"] is not None)
    old_key = str(next(h for h in heads if h and h["id"] == target)["key"])
    await users.update(target, doc(0, "other"), expected_ov=0)
    moved: list[Any] = []

    async def rewrite_mid_restore(point: Point, info: CheckpointInfo) -> None:
        # the restore has copied the old location and not claimed yet: move the pack now
        if point == "stored" and info.op == "restore" and not moved:
            client = packed.backends[0].client
            moved.append(await rewrite_pack(users._scope.store, [client[db_name]], old_key))

    with packed.checkpoints.hook(rewrite_mid_restore):
        await users.restore_object(target, ov=0)
    assert moved and moved[0].old_removed and moved[0].new_key is not None
    assert old_key not in await stored_keys(packed, db_name)
    item = await users.get_latest(target)
    assert item is not None and item.data == doc(ids.index(target))
    head = await users._scope.repo.find_head(head_id(None, target))
    assert head is not None and head["key"] == moved[0].new_key
    assert (await packed.admin.verify(db_name, grace_seconds=0)).ok


async def test_a_roll_forward_follows_a_pack_rewritten_under_its_claim(
    packed: Chronos, db_name: str
) -> None:
    users = packed.collection("users", db=db_name)
    repo = users._scope.repo
    ids = await create_many(users, 30)
    heads = [await repo.find_head(head_id(None, i)) for i in ids]
    head = next(h for h in heads if h and h["offset"] is not None)
    target = str(head["id"])
    v0 = await repo.find_version(version_id(None, target, 0))
    assert v0 is not None
    client = packed.backends[0].client
    moved = await rewrite_pack(users._scope.store, [client[db_name]], str(head["key"]))
    assert moved.old_removed
    # A restore that copied the old location before the rewrite, then died after claiming.
    claim = dict(v0) | {
        "_id": version_id(None, target, 1),
        "ov": 1,
        "op": "restore",
        "restored_from": 0,
        "payload_ov": 0,
        "token": "dead-writer",
        "prev_at": head["at"],
        "claim_us": now_us(),
        "cv": await repo.next_cv("_"),
    }
    await repo.insert_version(claim)
    assert await publish_claim(repo, None, target, 0)
    item = await users.get_latest(target)
    assert item is not None and item.ov == 1 and item.data == doc(ids.index(target))
    published = await repo.find_head(head_id(None, target))
    assert published is not None and published["key"] == moved.new_key
    assert (await packed.admin.verify(db_name, grace_seconds=0)).ok
