"""One-time probe of what a MongoDB deployment supports."""

from __future__ import annotations

from typing import Any

from pymongo import AsyncMongoClient

from chronos_async.meta._errors import mongo_errors

__all__ = ["supports_transactions"]


async def supports_transactions(client: AsyncMongoClient[Any]) -> bool:
    """True for a replica set or a sharded cluster, the deployments with transactions.

    Decided from ``hello`` alone: a standalone server (including wire-compatible test
    servers that accept ``startTransaction`` without isolating anything) has neither
    ``setName`` nor ``msg: "isdbgrid"``. Trying a transaction to find out would lie on
    such servers.
    """
    with mongo_errors("hello"):
        hello = await client.admin.command("hello")
    return bool(hello.get("setName")) or hello.get("msg") == "isdbgrid"
