"""Counters, retention and a GDPR purge on a local stack.

python examples/counters_and_lifecycle.py

Users sign up and change plans; the totals count sign-ups (events), paying users now (a
gauge) and distinct countries. Old versions are rolled up out of the live index and
still answer "what was it then". One user asks to be forgotten.
"""

from __future__ import annotations

import asyncio

from chronos_async import Chronos
from chronos_async.embedded import LocalStack

USERS = {
    "users": {
        "indexed_props": ["plan", "country"],
        "version_retention": {"max_versions_in_index": 2},
    }
}
RULES = {
    "rules": [
        {"name": "signups", "on": ["CREATE"], "when": {}, "count_unique": "country"},
        {"name": "paying", "kind": "gauge", "when": {"plan": {"$in": ["pro", "team"]}}},
    ]
}


async def main(s3: bool = True) -> None:
    # Without `weed` (no SeaweedFS wheel), LocalStack uses a local folder instead of S3.
    async with (
        LocalStack(s3=s3) as stack,
        Chronos(
            stack.config(
                collection_maps=USERS,
                counters={},
                counter_rules=RULES,
                hard_delete_enabled=True,
            )
        ) as chronos,
    ):
        users = chronos.collection("users", db="example")
        ada = await users.create({"name": "Ada", "plan": "free", "country": "UK"})
        bob = await users.create({"name": "Bob", "plan": "pro", "country": "FR"})
        first = ada
        for plan in ("pro", "team", "free", "pro"):
            ada = await users.update(
                ada.id, {"name": "Ada", "plan": plan, "country": "UK"}, expected_ov=ada.ov
            )
        totals = await chronos.counters.get_totals(db="example", collection="users")
        print(
            f"created {totals.created}, updated {totals.updated}, "
            f"paying now {totals.gauges['paying']}, countries {totals.unique['signups']}"
        )

        rolled = await chronos.admin.rollup_now(db="example")
        print(
            f"rolled up {rolled.versions_rolled} versions, {rolled.manifests_written} manifest(s)"
        )
        then = await users.get_as_of(ada.id, first.at)
        assert then is not None
        print("Ada's plan when she signed up:", then.data["plan"])

        report = await chronos.admin.purge(
            db="example", collection="users", id=bob.id, reason="erasure request", actor="dpo"
        )
        print(
            f"purged Bob: {report.versions} version(s), {report.objects} object(s), "
            f"tombstone {report.tombstone[:12]}..."
        )
        assert await users.get_latest(bob.id) is None
        after = await chronos.counters.get_totals(db="example", collection="users")
        print(
            f"paying now {after.gauges['paying']}, verify ok: "
            f"{(await chronos.admin.verify(db='example')).ok}"
        )


if __name__ == "__main__":
    asyncio.run(main())
