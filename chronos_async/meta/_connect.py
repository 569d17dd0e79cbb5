"""Opening the long-lived ``AsyncMongoClient`` of a backend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pymongo
from pymongo import AsyncMongoClient
from pymongo.errors import ConfigurationError

from chronos_async._errors import ConfigError
from chronos_async._redact import mask_uri_secrets
from chronos_async._sections import MongoClientOptions
from chronos_async.meta._errors import mongo_errors

__all__ = ["client_options", "open_client"]


def client_options(options: MongoClientOptions, *, op_timeout_ms: int) -> dict[str, Any]:
    """The keyword arguments ``AsyncMongoClient`` gets from the config.

    ``op_timeout_ms`` (``deadlines.mongo_ms``) becomes pymongo's ``timeoutMS``: one bound
    on every operation, server selection, connection checkout and round trip included
    (each batch of a cursor gets its own).
    """
    return {
        "timeoutMS": op_timeout_ms,
        "tz_aware": True,
        "appname": options.app_name,
        "maxPoolSize": options.max_pool_size,
        "minPoolSize": options.min_pool_size,
        "serverSelectionTimeoutMS": options.server_selection_timeout_ms,
        "connectTimeoutMS": options.connect_timeout_ms,
        "socketTimeoutMS": options.socket_timeout_ms,
    }


def _new_client(uri: str, kwargs: dict[str, Any]) -> AsyncMongoClient[Any]:
    """``AsyncMongoClient(uri, **kwargs)``; what pymongo refuses raises :class:`ConfigError`.

    The configuration validates URIs with pymongo's parser already; this catches what
    only the client checks (credentials a mechanism cannot use, TLS files that cannot be
    read, a config built without validation). The message is pymongo's, unless it would
    show a credential.
    """
    try:
        return AsyncMongoClient(uri, **kwargs)
    except (ConfigurationError, ValueError, TypeError, OSError) as exc:
        detail = mask_uri_secrets(str(exc), uri)
        raise ConfigError(f"MongoDB client options refused by pymongo: {detail}") from None


@asynccontextmanager
async def open_client(
    uri: str, options: MongoClientOptions, *, op_timeout_ms: int
) -> AsyncIterator[AsyncMongoClient[Any]]:
    """A connected client (verified with ``ping``), closed when the block exits.

    Raises :class:`~chronos_async.ConfigError` when pymongo refuses the URI or an option
    (nothing is started), :class:`~chronos_async.StorageError` (retryable) when the
    deployment does not answer within the server-selection timeout.
    """
    client = _new_client(uri, client_options(options, op_timeout_ms=op_timeout_ms))
    # With timeoutMS set, pymongo bounds server selection by it rather than by
    # serverSelectionTimeoutMS: the first contact gets the (shorter) selection bound.
    first_contact = min(options.server_selection_timeout_ms, op_timeout_ms) / 1000
    try:
        with mongo_errors("connection"), pymongo.timeout(first_contact):
            await client.admin.command("ping")
        yield client
    finally:
        await client.close()
