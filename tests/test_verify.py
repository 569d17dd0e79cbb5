"""admin.verify finds every kind of violation; repair and reconcile fix what they can."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from chronos_async import Chronos, Collection, ValidationError
from chronos_async._keys import head_id, payload_key, version_id
from chronos_async._reconcile import fix_collection
from chronos_async._scope import now_us


def kinds(report: Any) -> list[tuple[str, str | None]]:
    return sorted((p.kind, p.id) for p in report.problems)


@pytest.fixture
async def store(make_config: Any, db_name: str) -> Any:
    async with Chronos(make_config("local", leases={"lease_ms": 200})) as chronos:
        yield chronos


async def _records(users: Collection, n: int = 3) -> list[str]:
    ids = []
    for i in range(n):
        pad = "p" * (30_000 if i == 0 else 10)  # the first record's payload is not inline
        r = await users.create({"email": f"{i}@x", "pad": pad})
        await users.update(r.id, {"email": f"{i}@y", "pad": pad}, expected_ov=0)
        ids.append(r.id)
    return ids


async def test_a_clean_store_verifies(store: Chronos, db_name: str) -> None:
    users = store.collection("users", db=db_name)
    tenant = store.collection("users", db=db_name, tenant="acme")
    await _records(users)
    await _records(tenant, 2)
    await users.delete((await users.create({"email": "gone@x"})).id)
    report = await store.admin.verify(db_name)
    assert report.ok, report.problems
    assert report.counts["heads"] == 6 and report.counts["versions"] == 12
    assert report.counts["payloads_hashed"] >= 6
    quick = await store.admin.verify(db_name, "users", check_payloads=False)
    assert quick.ok and "payloads_hashed" not in quick.counts
    everything = await store.admin.verify()  # all databases
    assert everything.counts["collections"] >= 1
    with pytest.raises(ValidationError):
        await store.admin.verify("bad/db")


async def test_corruption_is_reported_by_kind(store: Chronos, db_name: str) -> None:
    users = store.collection("users", db=db_name)
    big, small, other = await _records(users)
    scope = users._scope
    repo = scope.repo
    # a payload whose bytes changed, and one that vanished
    big_head = await repo.find_head(head_id(None, big))
    assert big_head is not None and big_head["inline"] is None
    path = scope.store.inner._root / "json" / big_head["key"]  # type: ignore[attr-defined]
    path.chmod(0o644)
    path.write_bytes(b'{"email":"forged"}')
    first = await repo.find_version(version_id(None, big, 0))
    assert first is not None
    await scope.store.delete([first["key"]])
    # a head that does not mirror its version, a corrupt inline copy
    await repo.heads.update_one({"_id": head_id(None, small)}, {"$set": {"cv": 999_999}})
    await repo.versions.update_one(
        {"_id": version_id(None, other, 0)}, {"$set": {"inline": '{"email":"evil"}'}}
    )
    report = await store.admin.verify(db_name)
    assert ("checksum_mismatch", big) in kinds(report)
    assert ("missing_payload", big) in kinds(report)
    assert ("head_mismatch", small) in kinds(report)
    assert ("checksum_mismatch", other) in kinds(report)
    assert not report.ok


async def test_structural_violations(store: Chronos, db_name: str) -> None:
    users = store.collection("users", db=db_name)
    a, b, c = await _records(users)
    repo = users._scope.repo
    await repo.versions.delete_one({"_id": version_id(None, a, 0)})  # gap
    await repo.versions.update_one({"_id": version_id(None, b, 1)}, {"$set": {"cv": 0}})
    await repo.versions.delete_many({"id": {"$eq": c}})  # head without versions
    lone = await users.create({"email": "lone@x"})
    await repo.heads.delete_one({"_id": head_id(None, lone.id)})
    await repo.versions.update_one(
        {"_id": version_id(None, lone.id, 0)}, {"$set": {"claim_us": now_us() - 60_000_000}}
    )
    report = await store.admin.verify(db_name)
    found = kinds(report)
    assert ("ov_gap", a) in found
    assert ("cv_not_increasing", b) in found
    assert ("head_without_versions", c) in found
    assert ("versions_without_head", lone.id) in found


async def test_repair_rolls_a_dead_claim_forward(store: Chronos, db_name: str) -> None:
    users = store.collection("users", db=db_name)
    r = await users.create({"email": "a@x"})
    repo = users._scope.repo
    v0 = await repo.find_version(version_id(None, r.id, 0))
    assert v0 is not None
    await repo.insert_version(
        {
            **v0,
            "_id": version_id(None, r.id, 1),
            "ov": 1,
            "op": "update",
            "prev_at": (await repo.find_head(head_id(None, r.id)) or {})["at"],
            "claim_us": now_us() - 60_000_000,  # its writer died long ago
            "cv": v0["cv"] + 1,
            "token": "dead",
            "actor": "died",
        }
    )
    await asyncio.sleep(0.3)  # the dead writer's lease (200 ms) runs out
    report = await store.admin.verify(db_name)
    assert kinds(report) == [("unpublished_claim", r.id)]
    done = await store.admin.repair(db_name)
    assert done.rolled_forward == 1
    assert (await store.admin.verify(db_name)).ok
    latest = await users.get_latest(r.id)
    assert latest is not None and latest.ov == 1 and latest.actor == "died"


async def test_a_fresh_claim_is_in_flight_not_a_violation(store: Chronos, db_name: str) -> None:
    users = store.collection("users", db=db_name)
    r = await users.create({"email": "a@x"})
    repo = users._scope.repo
    v0 = await repo.find_version(version_id(None, r.id, 0))
    assert v0 is not None
    await repo.insert_version(
        {
            **v0,
            "_id": version_id(None, r.id, 1),
            "ov": 1,
            "claim_us": now_us(),
            "prev_at": 0,
            "token": "live",
        }
    )
    report = await store.admin.verify(db_name)
    assert report.ok and report.counts["in_flight_claims"] == 1
    assert (await store.admin.repair(db_name)).rolled_forward == 0


async def test_reconcile_removes_old_orphans_and_adopts_dead_creations(
    store: Chronos, db_name: str
) -> None:
    users = store.collection("users", db=db_name)
    r = await users.create({"email": "a@x"})
    scope = users._scope
    orphan = payload_key(None, db_name, "users", r.id, 7, "0123456789abcdef")
    await scope.store.put(orphan, b"{}", sha256="0" * 64)
    young = await store.admin.verify(db_name)
    assert young.ok and young.counts["in_flight_payloads"] == 1
    old = await store.admin.verify(db_name, grace_seconds=0)
    assert kinds(old) == [("orphan_payload", r.id)]  # the key names its record and version
    assert old.problems[0].ov == 7
    lone = await users.create({"email": "lone@x"})
    await scope.repo.heads.delete_one({"_id": head_id(None, lone.id)})
    await scope.repo.versions.update_one(
        {"_id": version_id(None, lone.id, 0)}, {"$set": {"claim_us": now_us() - 60_000_000}}
    )
    done = await store.admin.reconcile(db_name, grace_seconds=0)
    assert (done.orphans_removed, done.adopted_creates) == (1, 1)
    assert (await store.admin.verify(db_name, grace_seconds=0)).ok
    assert await users.get_latest(lone.id) is not None


@pytest.mark.parametrize(
    "grace",
    [float("nan"), float("inf"), float("-inf"), -1.0, -1, True, "60", None],
)
async def test_grace_must_be_a_finite_non_negative_number(
    store: Chronos, db_name: str, grace: Any
) -> None:
    # nan and inf used to escape as ValueError / OverflowError from datetime arithmetic.
    users = store.collection("users", db=db_name)
    r = await users.create({"email": "a@x"})
    orphan = payload_key(None, db_name, "users", r.id, 7, "0123456789abcdef")
    await users._scope.store.put(orphan, b"{}", sha256="0" * 64)
    with pytest.raises(ValidationError, match="grace_seconds must be a finite, non-negative"):
        await store.admin.verify(db_name, grace_seconds=grace)
    with pytest.raises(ValidationError, match="grace_seconds must be a finite, non-negative"):
        await store.admin.reconcile(db_name, grace_seconds=grace)
    assert await users._scope.store.get(orphan) == b"{}"  # refused before doing anything


async def test_an_int_beyond_float_range_is_refused(store: Chronos, db_name: str) -> None:
    with pytest.raises(ValidationError, match="grace_seconds must be a finite, non-negative"):
        await store.admin.verify(db_name, grace_seconds=10**400)


async def test_a_huge_finite_grace_keeps_everything(store: Chronos, db_name: str) -> None:
    users = store.collection("users", db=db_name)
    r = await users.create({"email": "a@x"})
    orphan = payload_key(None, db_name, "users", r.id, 7, "0123456789abcdef")
    await users._scope.store.put(orphan, b"{}", sha256="0" * 64)
    report = await store.admin.verify(db_name, grace_seconds=1e300)
    assert report.ok and report.counts["in_flight_payloads"] == 1
    assert (await store.admin.reconcile(db_name, grace_seconds=1e300)).orphans_removed == 0


async def test_an_object_that_is_not_a_payload_key_is_reported_never_removed(
    store: Chronos, db_name: str
) -> None:
    # Only a payload key names the version and head that could refer to it: an object
    # under the collection prefix without one cannot be proven unused, so it stays.
    users = store.collection("users", db=db_name)
    r = await users.create({"email": "a@x"})
    strange = f"_/{db_name}/users/{r.id}/notes.txt"
    await users._scope.store.put(strange, b"note", sha256="0" * 64)
    report = await store.admin.verify(db_name, grace_seconds=0)
    assert kinds(report) == [("orphan_payload", None)]
    assert "not a payload key" in report.problems[0].detail
    assert (await store.admin.reconcile(db_name, grace_seconds=0)).orphans_removed == 0
    assert await users._scope.store.get(strange) == b"note"


async def test_an_orphan_claimed_after_the_scan_is_not_removed(
    store: Chronos, db_name: str
) -> None:
    # The last check runs right before deleting: a key that a version refers to by then
    # (here: a version inserted after the scan listed the key) is kept.
    users = store.collection("users", db=db_name)
    r = await users.create({"email": "a@x"})
    scope = users._scope
    late = payload_key(None, db_name, "users", r.id, 1, "0123456789abcdef")
    await scope.store.put(late, b"{}", sha256="0" * 64)
    [scan] = await store.admin._scan(
        db_name, "users", check_payloads=False, grace_seconds=0, progress=None
    )
    assert [keys for _, keys in scan.orphans] == [[late]]
    v0 = await scope.repo.find_version(version_id(None, r.id, 0))
    assert v0 is not None
    await scope.repo.insert_version(
        {**v0, "_id": version_id(None, r.id, 1), "ov": 1, "key": late, "claim_us": now_us()}
    )
    done = await fix_collection(
        scan,
        remove_orphans=True,
        still_referenced=store.admin._reference_check(),
        settle_create_us=60_000_000,
    )
    assert done.orphans_removed == 0
    assert await scope.store.get(late) == b"{}"
