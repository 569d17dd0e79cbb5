"""Quick start: a local stack, a collection, versions, time travel. No services needed.

python examples/quickstart.py
"""

from __future__ import annotations

import asyncio

from chronos_async import Chronos
from chronos_async.embedded import LocalStack


async def main() -> None:
    async with LocalStack(s3=False) as stack:  # s3=True (default) starts SeaweedFS too
        config = stack.config(collection_maps={"users": {"indexed_props": ["email", "status"]}})
        async with Chronos(config) as chronos:
            users = chronos.collection("users", db="quickstart", tenant="acme")
            r = await users.create(
                {"email": "ada@example.com", "status": "invited"}, actor="signup", reason="invite"
            )
            r = await users.update(
                r.id,
                {"email": "ada@example.com", "status": "active"},
                expected_ov=r.ov,
                actor="ada",
                reason="accepted the invitation",
            )
            first = await users.get_version(r.id, 0)
            assert first is not None
            print("version 0:", first.data)
            page = await users.list_by_meta({"status": "active"})
            print("active users:", [item.data["email"] for item in page.items])
            async for v in users.history(r.id):
                print(f"ov={v.ov} {v.op} by {v.actor}: {v.reason}")


if __name__ == "__main__":
    asyncio.run(main())
