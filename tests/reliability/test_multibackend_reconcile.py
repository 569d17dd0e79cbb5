"""Reconcile never deletes a live payload when backends share one payload store.

Invariant 11 (DESIGN.md): a payload is deleted only when no version of any backend refers
to it. Two real MongoDB deployments (the session's nx-27017 and a second one) are the two
backends; their payloads go to ONE store: the local folder every backend shares, or two
``spaces_conns`` naming the same SeaweedFS bucket and key prefix. Records are spread over
both backends by tenant (the default routing key; records without a tenant are routed by
the database name), so both backends hold ``<db>.users`` and the no-tenant payload prefix
``_/<db>/users/`` is listed for both.

The fault: one backend's view of a shared store. A backend that does not hold a record
used to report that record's payloads as ``orphan_payload`` and ``reconcile`` deleted
them; reads then raised ``IntegrityError`` ("payload ... is missing from the store").
Every test here failed that way before the fix. Also checked: genuine orphans planted
directly into the store under each backend's prefix are reported and removed, exactly
those; ``missing_payload`` is still found; one store reached under two identities (two
spellings of one endpoint) is saved by the last check against every backend.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient, monitoring

from chronos_async import Chronos, ChronosConfig, VerifyReport
from chronos_async._keys import NO_TENANT, collection_prefix, head_id, payload_key, version_id
from chronos_async._reconcile import referenced_keys
from chronos_async.storage import BlobStore
from tests.support import drop_databases

COLL = "users"
HOUR = 3600.0


@dataclass(frozen=True)
class Record:
    """One record written by :func:`populate`: where it lives and its last ``ov``."""

    tenant: str | None
    id: str
    ov: int
    backend: int


@pytest.fixture
async def second_db(second_mongo_uri: str, db_name: str) -> AsyncIterator[str]:
    """This test's database name, dropped on the second server afterwards too."""
    yield db_name
    await drop_databases(second_mongo_uri, db_name, f"{db_name}_p")


def s3_conn(s3: Any, key_prefix: str, endpoint: str | None = None) -> dict[str, Any]:
    """A ``spaces_conns`` entry on the session bucket set under ``key_prefix``."""
    return {
        "endpoint": endpoint or s3.endpoint,
        "region": s3.region,
        "access_key": s3.access_key,
        "secret_key": s3.secret_key,
        "json_bucket": s3.json_bucket,
        "content_bucket": s3.content_bucket,
        "backups_bucket": s3.backups_bucket,
        "force_path_style": True,
        "key_prefix": key_prefix,
    }


def two_backends(uris: list[str], storage: dict[str, Any]) -> ChronosConfig:
    """Two backends, every payload read from the store (nothing kept inline)."""
    return ChronosConfig.model_validate(
        {"mongo_uris": uris, "limits": {"inline_payload_bytes": 0}, **storage}
    )


def local_storage(tmp_path: Path) -> dict[str, Any]:
    """One local folder: shared by every backend by construction."""
    return {
        "payload_storage": "local",
        "local_storage": {"enabled": True, "base_path": str(tmp_path / "payloads")},
    }


def spread(chronos: Chronos, db: str) -> dict[str | None, int]:
    """Tenants (``None`` included) placed so that each backend holds at least two."""
    placed: dict[str | None, int] = {None: chronos.route(db=db, collection=COLL).index}
    for n in range(200):
        tenant = f"acme{n}"
        backend = chronos.route(db=db, collection=COLL, tenant=tenant).index
        if sum(1 for b in placed.values() if b == backend) < 2:
            placed[tenant] = backend
        if all(sum(1 for b in placed.values() if b == i) >= 2 for i in (0, 1)):
            return placed
    raise AssertionError(f"routing never used both backends: {placed}")


async def populate(chronos: Chronos, db: str) -> list[Record]:
    """Per tenant: updates, a logical delete, a restore (reusing an old key), an undelete."""
    records: list[Record] = []
    for tenant, backend in spread(chronos, db).items():
        users = chronos.collection(COLL, db=db, tenant=tenant)
        a = await users.create({"name": "a", "n": 0})
        for n in (1, 2):
            await users.update(a.id, {"name": "a", "n": n}, expected_ov=n - 1)
        b = await users.create({"name": "b"})
        await users.update(b.id, {"name": "b", "n": 1}, expected_ov=0)
        await users.delete(b.id, expected_ov=1)
        c = await users.create({"name": "c", "n": 0})
        await users.update(c.id, {"name": "c", "n": 1}, expected_ov=0)
        await users.enrich(c.id, {"tags": ["x"]}, function_id="tagger@v1")
        await users.restore_object(c.id, ov=0)  # ov 3 reuses the payload key of ov 0
        d = await users.create({"name": "d"})
        await users.delete(d.id, expected_ov=0)
        await users.restore_object(d.id, ov=0)  # undelete
        for rid, ov in ((a.id, 2), (b.id, 2), (c.id, 3), (d.id, 2)):
            records.append(Record(tenant, rid, ov, backend))
    assert {r.backend for r in records} == {0, 1}
    for holder in chronos.backends:  # both backends hold the collection
        assert f"{COLL}_head" in await holder.client[db].list_collection_names()
    return records


async def read_everything(chronos: Chronos, db: str, records: list[Record]) -> None:
    """Every version of every record reads back (payloads present and intact)."""
    for r in records:
        users = chronos.collection(COLL, db=db, tenant=r.tenant)
        latest = await users.get_latest(r.id, include_deleted=True)
        assert latest is not None and latest.ov == r.ov, r
        for ov in range(r.ov + 1):
            item = await users.get_version(r.id, ov)
            assert item is not None and item.ov == ov, (r, ov)


async def live_keys(chronos: Chronos, db: str) -> set[str]:
    """Every payload key a version or head of any backend refers to."""
    keys: set[str] = set()
    for backend in chronos.backends:
        for suffix in ("_ver", "_head"):
            async for doc in backend.client[db][COLL + suffix].find({}, projection={"key": 1}):
                keys.add(doc["key"])
    return keys


async def stored_keys(store: BlobStore, db: str, records: list[Record]) -> set[str]:
    """Every object under the collection prefix of every tenant written."""
    keys: set[str] = set()
    for tenant in {r.tenant for r in records}:
        async for info in store.list(collection_prefix(tenant, db, COLL)):
            keys.add(info.key)
    return keys


def orphans_of(report: VerifyReport) -> set[str]:
    """The keys ``verify`` reported as orphan payloads."""
    return {
        p.detail.removeprefix("unreferenced object ")
        for p in report.problems
        if p.kind == "orphan_payload"
    }


async def plant_orphans(store: BlobStore, db: str, records: list[Record]) -> set[str]:
    """Objects under valid payload keys that no version refers to, on both backends' prefixes.

    Per backend: a payload beyond a record's last ``ov``, the loser of a race for an
    existing ``ov`` (same version id, another key), and one of a record that never existed.
    """
    planted: set[str] = set()
    for backend in (0, 1):
        r = next(r for r in records if r.backend == backend)
        never = f"never-{uuid.uuid4().hex[:8]}"
        for rid, ov in ((r.id, r.ov + 5), (r.id, 0), (never, 0)):
            key = payload_key(r.tenant, db, COLL, rid, ov, uuid.uuid4().hex[:16])
            body = b'{"orphan":true}'
            await store.put(key, body, sha256=hashlib.sha256(body).hexdigest())
            planted.add(key)
    return planted


def kinds(report: VerifyReport) -> list[str]:
    return sorted(p.kind for p in report.problems)


# -- the tests ----------------------------------------------------------------------------


async def test_shared_local_folder_reconcile_keeps_every_live_payload(
    mongo_uri: str, second_mongo_uri: str, second_db: str, tmp_path: Path
) -> None:
    uris = [mongo_uri, second_mongo_uri]
    await check_shared_store(uris, local_storage(tmp_path), second_db)


async def test_shared_s3_bucket_and_prefix_reconcile_keeps_every_live_payload(
    mongo_uri: str, second_mongo_uri: str, second_db: str, s3_server: Any, key_prefix: str
) -> None:
    conn = s3_conn(s3_server, key_prefix)  # two connections, one bucket and key prefix
    shared = {"payload_storage": "s3", "spaces_conns": [conn, conn]}
    await check_shared_store([mongo_uri, second_mongo_uri], shared, second_db)


async def check_shared_store(uris: list[str], shared: dict[str, Any], db: str) -> None:
    """verify, reconcile, plant orphans, remove a live payload: on one shared store."""
    async with Chronos(two_backends(uris, shared)) as chronos:
        first, second = (b.store for b in chronos.backends)
        assert first is not second and first.identity == second.identity
        records = await populate(chronos, db)
        live = await live_keys(chronos, db)
        assert await stored_keys(first, db, records) == live

        report = await chronos.admin.verify(db, grace_seconds=0)
        assert report.ok, "\n".join(map(str, report.problems))
        assert report.counts["payloads"] == len(live)  # the shared store listed once
        done = await chronos.admin.reconcile(db, grace_seconds=0)
        assert done.orphans_removed == 0
        assert await stored_keys(first, db, records) == live
        await read_everything(chronos, db, records)

        # Genuine orphans under both backends' prefixes: exactly those go.
        planted = await plant_orphans(first, db, records)
        found = await chronos.admin.verify(db, grace_seconds=0)
        assert kinds(found) == ["orphan_payload"] * len(planted)
        assert orphans_of(found) == planted
        done = await chronos.admin.reconcile(db, grace_seconds=0)
        assert done.orphans_removed == len(planted)
        assert await stored_keys(first, db, records) == live
        assert (await chronos.admin.verify(db, grace_seconds=0)).ok
        await read_everything(chronos, db, records)

        # A live payload removed behind the library's back is still found, on each backend.
        gone: dict[tuple[str, int], str] = {}
        for backend in (0, 1):
            r = next(r for r in records if r.backend == backend)
            versions = chronos.backends[backend].client[db][f"{COLL}_ver"]
            doc = await versions.find_one({"_id": version_id(r.tenant, r.id, 1)})
            assert doc is not None
            gone[(r.id, 1)] = doc["key"]
        await first.delete(list(gone.values()))
        broken = await chronos.admin.verify(db, grace_seconds=0, check_payloads=False)
        assert sorted((p.kind, p.id, p.ov) for p in broken.problems) == sorted(
            ("missing_payload", rid, ov) for rid, ov in gone
        )


async def test_default_grace_keeps_old_live_payloads_of_the_other_backend(
    mongo_uri: str, second_mongo_uri: str, second_db: str, tmp_path: Path
) -> None:
    # The report that started it: default grace, payloads two hours old, local folder.
    db = second_db
    config = two_backends([mongo_uri, second_mongo_uri], local_storage(tmp_path))
    async with Chronos(config) as chronos:
        store = chronos.backends[0].store
        records = await populate(chronos, db)
        live = await live_keys(chronos, db)
        old = await plant_orphans(store, db, records)
        two_hours_ago = time.time() - 2 * HOUR
        json_root = tmp_path / "payloads" / "json"
        for key in live | old:
            os.utime(json_root / key, (two_hours_ago, two_hours_ago))
        young = await plant_orphans(store, db, records)  # a write in flight, for all we know

        done = await chronos.admin.reconcile(db)
        await read_everything(chronos, db, records)
        assert done.orphans_removed == len(old)
        assert await stored_keys(store, db, records) == live | young
        report = await chronos.admin.verify(db)
        assert report.ok and report.counts["in_flight_payloads"] == len(young)


async def test_one_store_under_two_identities_is_saved_by_the_last_check(
    mongo_uri: str, second_mongo_uri: str, second_db: str, s3_server: Any, key_prefix: str
) -> None:
    # Two spellings of one endpoint: the stores look different, the objects are the same.
    # Only the final look-up on every backend (by the ids each key names) keeps them.
    db = second_db
    alias = s3_server.endpoint.replace("127.0.0.1", "localhost")
    if alias == s3_server.endpoint:
        pytest.skip("the S3 endpoint is not on 127.0.0.1: no second spelling to use")
    conns = [s3_conn(s3_server, key_prefix), s3_conn(s3_server, key_prefix, alias)]
    shared = {"payload_storage": "s3", "spaces_conns": conns}
    async with Chronos(two_backends([mongo_uri, second_mongo_uri], shared)) as chronos:
        first, second = (b.store for b in chronos.backends)
        assert first.identity != second.identity
        records = await populate(chronos, db)
        live = await live_keys(chronos, db)

        report = await chronos.admin.verify(db, grace_seconds=0)
        assert report.ok, "\n".join(map(str, report.problems))
        assert report.counts["payloads_referenced_elsewhere"] > 0
        planted = await plant_orphans(first, db, records)
        assert planted <= orphans_of(await chronos.admin.verify(db, grace_seconds=0))
        done = await chronos.admin.reconcile(db, grace_seconds=0)
        # Seen under both identities, an orphan may be counted by each (deleted once).
        assert done.orphans_removed >= len(planted)
        assert await stored_keys(first, db, records) == live
        await read_everything(chronos, db, records)


class FindCounter(monitoring.CommandListener):
    """Counts ``find`` commands (instrumentation of a real client, not a mock)."""

    def __init__(self) -> None:
        self.finds = 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "find":
            self.finds += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def test_reference_check_looks_up_ids_on_every_backend_in_batches(
    mongo_uri: str, second_mongo_uri: str, second_db: str, tmp_path: Path
) -> None:
    db = second_db
    config = two_backends([mongo_uri, second_mongo_uri], local_storage(tmp_path))
    async with Chronos(config) as chronos:
        records = await populate(chronos, db)
        on = {b: next(r for r in records if r.backend == b) for b in (0, 1)}
        clients = [b.client for b in chronos.backends]

        async def key_of(r: Record, ov: int) -> str:
            doc = await clients[r.backend][db][f"{COLL}_ver"].find_one(
                {"_id": version_id(r.tenant, r.id, ov)}
            )
            assert doc is not None
            return str(doc["key"])

        # A head that outlived its versions still refers to its payload.
        headless = next(r for r in records if r.backend == 1 and r != on[1])
        head_key = await key_of(headless, headless.ov)
        await clients[1][db][f"{COLL}_ver"].delete_many({"id": {"$eq": headless.id}})
        restored = next(r for r in records if r.backend == 0 and r.ov == 3)  # ov 3 = ov 0
        restore_doc = await clients[0][db][f"{COLL}_head"].find_one(
            {"_id": head_id(restored.tenant, restored.id)}
        )
        assert restore_doc is not None and restore_doc["key"] == await key_of(restored, 0)
        live = {await key_of(on[0], 1), await key_of(on[1], 2), head_key, restore_doc["key"]}
        t0 = on[0].tenant or NO_TENANT
        dead = {
            payload_key(on[0].tenant, db, COLL, on[0].id, 1, "0123456789abcdef"),  # lost race
            payload_key(on[1].tenant, db, COLL, on[1].id, 9, "0123456789abcdef"),  # beyond head
            payload_key(None, db, COLL, "never", 0, "0123456789abcdef"),
        }
        strange = {f"{t0}/{db}/{COLL}/not-a-payload-key"}
        keys = sorted(live | dead | strange)
        assert await referenced_keys(clients, keys) == live | strange
        assert await referenced_keys(clients, keys, batch=2) == live | strange
        assert await referenced_keys(clients, []) == set()

    # Batched: 1,200 keys of one collection cost, per backend and batch of 500, one
    # version, one head, one rollup-catalog and one reusing-version query.
    counters = [FindCounter(), FindCounter()]
    counted: list[AsyncMongoClient[dict[str, Any]]] = [
        AsyncMongoClient(uri, event_listeners=[counter])
        for uri, counter in zip([mongo_uri, second_mongo_uri], counters, strict=True)
    ]
    try:
        many = [payload_key(None, db, COLL, f"id{i}", 0, "0123456789abcdef") for i in range(1200)]
        assert await referenced_keys(counted, many) == set()
        assert [c.finds for c in counters] == [12, 12]
    finally:
        for client in counted:
            await client.close()
