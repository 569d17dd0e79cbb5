"""Typed collections: pydantic models in, pydantic models out. No services needed.

python examples/typed_collection.py
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from uuid import UUID, uuid4

from pydantic import BaseModel

from chronos_async import Chronos, ModelValidationError
from chronos_async.embedded import LocalStack


class Address(BaseModel):
    city: str
    country: str


class Customer(BaseModel):
    email: str
    status: str = "invited"
    credit: Decimal
    joined: datetime
    account: UUID
    address: Address
    tags: list[str] = []


async def main() -> None:
    async with LocalStack(s3=False) as stack:
        config = stack.config(collection_maps={"customers": {"indexed_props": ["status"]}})
        async with Chronos(config) as chronos:
            # Collection[Customer]: writes take Customer (or a dict), reads give Item[Customer].
            customers = chronos.collection("customers", db="typed_example", model=Customer)
            ada = Customer(
                email="ada@example.com",
                credit=Decimal("120.50"),
                joined=datetime(2026, 3, 1, 9, 30, tzinfo=UTC),
                account=uuid4(),
                address=Address(city="London", country="UK"),
            )
            r = await customers.create(ada, actor="signup", reason="new customer")
            item = await customers.get_latest(r.id)
            assert item is not None
            print("read back:", item.data.email, item.data.credit, item.data.joined.isoformat())

            active = item.data.model_copy(update={"status": "active"})
            r = await customers.update(r.id, active, expected_ov=r.ov, reason="first order")
            # An enrich patch is part of the data, so it stays a dict; the result validates.
            await customers.enrich(r.id, {"tags": ["vip"]}, function_id="scorer@v1")
            page = await customers.list_by_meta({"status": "active"})
            print("active:", [(i.data.email, i.data.tags) for i in page.items])
            first = await customers.get_version(r.id, 0)
            assert first is not None
            print("version 0 status:", first.data.status)

            # An untyped handle of the same collection sees the model's JSON dump.
            raw = chronos.collection("customers", db="typed_example")
            stored = await raw.get_latest(r.id)
            assert stored is not None
            print("stored:", stored.data)

            try:
                await customers.create({"email": "bob@example.com", "credit": "lots"})
            except ModelValidationError as exc:
                print("refused:", exc)


if __name__ == "__main__":
    asyncio.run(main())
