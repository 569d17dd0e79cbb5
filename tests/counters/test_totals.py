"""Totals and conditional counters against the session servers: every kind of write,
gauges that follow a flipping field, unique values, reset, recount, verify drift."""

from __future__ import annotations

from typing import Any

import pytest
from pymongo import AsyncMongoClient

from chronos_async import Chronos, ConfigError, Totals
from tests.conftest import MakeConfig

MAP = {"users": {"indexed_props": ["status", "plan", "country"]}}
RULES = {
    "rules": [
        {"name": "activations", "on": ["CREATE", "UPDATE"], "when": {"status": "active"}},
        {"name": "active", "kind": "gauge", "when": {"status": "active"}},
        {
            "name": "paying",
            "kind": "gauge",
            "scope": "payload",
            "when": {"$or": [{"billing.plan": "pro"}, {"billing.seats": {"$gte": 10}}]},
        },
        {"name": "countries", "when": {"country": {"$exists": True}}, "count_unique": "country"},
        {"name": "deletions_of_active", "on": ["DELETE"], "when": {"status": "active"}},
    ]
}


def _config(make_config: MakeConfig, storage: str = "local", **extra: Any) -> Any:
    return make_config(storage, collection_maps=MAP, counter_rules=RULES, counters={}, **extra)


async def test_every_kind_of_write_is_counted_once(make_config: MakeConfig, db_name: str) -> None:
    async with Chronos(_config(make_config, hard_delete_enabled=True)) as chronos:
        users = chronos.collection("users", db=db_name)
        a = await users.create({"status": "active", "country": "FR"}, actor="t")
        b = await users.create({"status": "idle", "country": "DE", "billing": {"plan": "pro"}})
        await users.update(a.id, {"status": "idle", "country": "FR"}, expected_ov=0)
        b_data = {"status": "active", "country": "DE", "billing": {"seats": 3}}
        await users.update(b.id, b_data, expected_ov=0)
        # a no-op update stores nothing and counts nothing
        assert not (await users.update(b.id, b_data, expected_ov=1)).changed
        await users.enrich(a.id, {"billing": {"seats": 12}})
        await users.delete(b.id)
        await users.restore_object(b.id, ov=1)
        totals = await chronos.counters.get_totals(db=db_name, collection="users")
        assert isinstance(totals, Totals)
        assert (totals.created, totals.updated, totals.deleted) == (2, 2, 1)
        assert (totals.enriched, totals.restored) == (1, 1)
        # activations: a's create, b's update (b's restore is not in `on`)
        assert totals.rules["activations"] == 2
        assert totals.rules["deletions_of_active"] == 1
        assert totals.gauges == {"active": 1, "paying": 1}  # b active again; a has 12 seats
        assert totals.unique == {"countries": 2}
        assert totals["active"] == 1 and totals.as_dict()["countries_unique"] == 2
        await users.delete(a.id, hard=True)
        after = await chronos.counters.get_totals(db=db_name, collection="users")
        assert after.deleted == 2 and after.gauges == {"active": 1, "paying": 0}
        assert after.created == 2  # a hard delete keeps the history it had in the totals
        report = await chronos.admin.verify(db=db_name)
        assert report.ok, report.problems
        recount = await chronos.admin.recount(db=db_name)
        assert recount.corrected == ()
        assert await chronos.counters.get_totals(db=db_name, collection="users") == after


async def test_counts_are_per_tenant_and_reset_keeps_gauges(
    make_config: MakeConfig, db_name: str
) -> None:
    async with Chronos(_config(make_config)) as chronos:
        acme = chronos.collection("users", db=db_name, tenant="acme")
        other = chronos.collection("users", db=db_name, tenant="other")
        await acme.create({"status": "active"})
        await acme.create({"status": "active"})
        await other.create({"status": "idle"})
        get = chronos.counters.get_totals
        assert (await get(db=db_name, collection="users", tenant="acme")).gauges["active"] == 2
        assert (await get(db=db_name, collection="users", tenant="other")).gauges["active"] == 0
        assert (await get(db=db_name, collection="users")).created == 0
        await chronos.counters.reset_totals(db=db_name, collection="users", tenant="acme")
        reset = await get(db=db_name, collection="users", tenant="acme")
        assert reset.created == 0 and reset.rules["activations"] == 0
        assert reset.gauges["active"] == 2 and reset.reset_at is not None
        await acme.create({"status": "active"})
        assert (await get(db=db_name, collection="users", tenant="acme")).created == 1
        # a recount honours the reset: only writes claimed after it are events
        report = await chronos.admin.recount(db=db_name)
        assert report.corrected == () and report.totals >= 2
        again = await get(db=db_name, collection="users", tenant="acme")
        assert again.created == 1 and again.gauges["active"] == 3


async def test_recount_repairs_lost_increments_and_verify_reports_them(
    make_config: MakeConfig, db_name: str, mongo_uri: str
) -> None:
    async with Chronos(_config(make_config)) as chronos:
        users = chronos.collection("users", db=db_name)
        ids = [(await users.create({"status": "active", "country": c})).id for c in "ABC"]
        await users.update(ids[0], {"status": "idle"}, expected_ov=0)
        await chronos.counters.flush()
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri)
        try:  # lose some increments, as a crash between publish and flush would
            await client[db_name]["cnt_total"].update_many(
                {}, {"$inc": {"created": -2, "g_active": 5}}
            )
        finally:
            await client.close()
        report = await chronos.admin.verify(db=db_name)
        drift = [p for p in report.problems if p.kind == "counter_drift"]
        assert {p.detail.split(" ")[0] for p in drift} == {"created", "g_active"}
        fixed = await chronos.admin.recount(db=db_name, collection="users")
        assert {d.field for d in fixed.corrected} == {"created", "g_active"}
        assert fixed.records == 3 and fixed.versions == 4
        totals = await chronos.counters.get_totals(db=db_name, collection="users")
        assert (
            totals.created == 3
            and totals.gauges["active"] == 2
            and totals.unique == {"countries": 3}
        )
        assert (await chronos.admin.verify(db=db_name)).ok


async def test_rules_added_later_are_backfilled_by_recount(
    make_config: MakeConfig, db_name: str
) -> None:
    async with Chronos(make_config("local", collection_maps=MAP, counters={})) as chronos:
        users = chronos.collection("users", db=db_name)
        for status in ("active", "active", "idle"):
            await users.create({"status": status, "billing": {"plan": "pro"}})
        assert (await chronos.counters.get_totals(db=db_name, collection="users")).created == 3
    async with Chronos(_config(make_config)) as chronos:
        before = await chronos.counters.get_totals(db=db_name, collection="users")
        assert before.gauges == {"active": 0, "paying": 0}
        await chronos.admin.recount(db=db_name)
        after = await chronos.counters.get_totals(db=db_name, collection="users")
        assert after.gauges == {"active": 2, "paying": 3} and after.rules["activations"] == 2


async def test_debounced_increments_are_flushed_on_close(
    make_config: MakeConfig, db_name: str
) -> None:
    config = _config(make_config, write_optimization={"debounce_counters_ms": 60_000})
    async with Chronos(config) as chronos:
        users = chronos.collection("users", db=db_name)
        for _ in range(5):
            await users.create({"status": "active"})
    async with Chronos(_config(make_config)) as chronos:
        totals = await chronos.counters.get_totals(db=db_name, collection="users")
        assert totals.created == 5 and totals.gauges["active"] == 5


async def test_separate_counters_database(
    make_config: MakeConfig, db_name: str, mongo_uri: str
) -> None:
    config = make_config(
        "local",
        collection_maps=MAP,
        counter_rules=RULES,
        counters={"mongo_uri": mongo_uri, "db_name": f"{db_name}_p"},
    )
    async with Chronos(config) as chronos:
        users = chronos.collection("users", db=db_name)
        await users.create({"status": "active"})
        totals = await chronos.counters.get_totals(db=db_name, collection="users")
        assert totals.created == 1
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri)
    try:
        assert await client[f"{db_name}_p"]["cnt_total"].count_documents({}) == 1
        assert await client[db_name]["cnt_total"].count_documents({}) == 0
    finally:
        await client.close()


async def test_counters_off_is_a_config_error(make_config: MakeConfig, db_name: str) -> None:
    async with Chronos(make_config("local")) as chronos:
        with pytest.raises(ConfigError, match="counters are off"):
            await chronos.counters.get_totals(db=db_name, collection="users")
        users = chronos.collection("users", db=db_name)
        r = await users.create({"status": "active"})
        version = await users._scope.repo.find_version(f"_/{r.id}/0")
        assert version is not None and "cnt" not in version  # nothing stamped
