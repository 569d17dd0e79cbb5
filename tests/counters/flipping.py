"""The counter stress workload: random writes over 50 records whose ``status`` flips, and
the totals computed independently from the raw version index and heads."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import orjson
from pymongo import AsyncMongoClient

from chronos_async import (
    Collection,
    ItemDeletedError,
    ItemExistsError,
    LockTimeoutError,
    NotFoundError,
    VersionConflictError,
)

RECORDS = [f"r{i:02d}" for i in range(50)]
MAP = {"users": {"indexed_props": ["status", "kind"]}}
RULES = {
    "rules": [
        {"name": "flips", "on": ["UPDATE"], "when": {"status": "on"}},
        {"name": "on_now", "kind": "gauge", "when": {"status": "on"}},
        {"name": "heavy", "kind": "gauge", "scope": "payload", "when": {"n": {"$gt": 5}}},
        {
            "name": "kinds",
            "on": ["CREATE", "UPDATE"],
            "when": {"kind": {"$exists": True}},
            "count_unique": "kind",
        },
    ]
}
#: Refusals a random write may meet; they publish nothing and count nothing.
REFUSED = (
    ItemDeletedError,
    ItemExistsError,
    LockTimeoutError,
    NotFoundError,
    VersionConflictError,
)


def _data(rng: random.Random) -> dict[str, Any]:
    return {
        "status": rng.choice(["on", "off"]),
        "n": rng.randint(0, 10),
        "kind": rng.choice(["k1", "k2", "k3", "k4", "k5", "k6"]),
    }


async def random_write(users: Collection, rng: random.Random) -> str:
    """One random write; returns its outcome (the op, or the refusal's class name)."""
    item = rng.choice(RECORDS)
    roll = rng.random()
    try:
        if roll < 0.55:
            try:
                await users.update(item, _data(rng), expected_ov=None, actor="stress")
            except NotFoundError:
                await users.create(_data(rng), id=item, actor="stress")
                return "create"
            except ItemDeletedError:
                await users.restore_object(item, ov=0, actor="stress")
                return "restore"
            return "update"
        if roll < 0.7:
            await users.enrich(item, {"n": rng.randint(0, 10)}, actor="stress")
            return "enrich"
        if roll < 0.85:
            await users.delete(item, actor="stress")
            return "delete"
        await users.restore_object(item, ov=0, actor="stress")
        return "restore"
    except REFUSED as exc:
        return type(exc).__name__


async def truth(mongo_uri: str, db: str) -> tuple[dict[str, int], int]:
    """What the totals must be, from the raw documents (no library code): the counts by
    totals field, and the number of distinct ``kind`` values of the ``kinds`` rule."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri)
    try:
        heads = {h["id"]: h async for h in client[db]["users_head"].find({})}
        counts: Counter[str] = Counter()
        kinds = set()
        fields = {
            "create": "created",
            "update": "updated",
            "delete": "deleted",
            "restore": "restored",
            "enrich": "enriched",
        }
        async for v in client[db]["users_ver"].find({}, projection={"inline": 0}):
            head = heads.get(v["id"])
            if head is None or v["ov"] > head["ov"]:
                continue
            counts[fields[v["op"]]] += 1
            status = (v.get("meta") or {}).get("status")
            if v["op"] == "update" and status == "on":
                counts["r_flips"] += 1
            if v["op"] in ("create", "update"):
                counts["r_kinds"] += 1
                kinds.add(v["meta"]["kind"])
        for head in heads.values():
            if head.get("deleted"):
                continue
            counts["g_on_now"] += head["meta"]["status"] == "on"
            counts["g_heavy"] += orjson.loads(head["inline"])["n"] > 5
        return dict(counts), len(kinds)
    finally:
        await client.close()


def as_fields(totals: Any) -> dict[str, int]:
    """A :class:`~chronos_async.Totals` as totals fields (zeros dropped)."""
    out = {
        "created": totals.created,
        "updated": totals.updated,
        "deleted": totals.deleted,
        "restored": totals.restored,
        "enriched": totals.enriched,
    }
    out.update({f"r_{k}": v for k, v in totals.rules.items()})
    out.update({f"g_{k}": v for k, v in totals.gauges.items()})
    return {k: v for k, v in out.items() if v}
