"""Opening the long-lived ``AsyncMongoClient`` of a backend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from pymongo import AsyncMongoClient

from chronos_async._sections import MongoClientOptions
from chronos_async.meta._errors import mongo_errors

__all__ = ["open_client"]


@asynccontextmanager
async def open_client(
    uri: str, options: MongoClientOptions
) -> AsyncIterator[AsyncMongoClient[Any]]:
    """A connected client (verified with ``ping``), closed when the block exits.

    Raises :class:`~chronos_async.StorageError` (retryable) when the deployment does not
    answer within the server-selection timeout.
    """
    client: AsyncMongoClient[Any] = AsyncMongoClient(
        uri,
        tz_aware=True,
        appname=options.app_name,
        maxPoolSize=options.max_pool_size,
        minPoolSize=options.min_pool_size,
        serverSelectionTimeoutMS=options.server_selection_timeout_ms,
        connectTimeoutMS=options.connect_timeout_ms,
        socketTimeoutMS=options.socket_timeout_ms,
    )
    try:
        with mongo_errors("connection"):
            await client.admin.command("ping")
        yield client
    finally:
        await client.close()
