"""MongoBlobStore against the session nx-27017 server: document shape and error mapping."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.errors import (
    AutoReconnect,
    DuplicateKeyError,
    NetworkTimeout,
    OperationFailure,
    ServerSelectionTimeoutError,
)

from chronos_async import StorageError
from chronos_async.storage import MongoBlobStore
from chronos_async.storage.mongo import _is_retryable

COLLECTION = "payloads"


def sha(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


async def test_document_shape(mongo_client: AsyncMongoClient[Any], db_name: str) -> None:
    body = b'{"x": 1}'
    async with MongoBlobStore(mongo_client, db_name, COLLECTION) as store:
        await store.put("t/db/c/1/v0/ab.json", body, sha256=sha(body), role="content")
    doc = await mongo_client[db_name][COLLECTION].find_one({"_id": "content:t/db/c/1/v0/ab.json"})
    assert doc is not None
    assert doc["role"] == "content"
    assert doc["key"] == "t/db/c/1/v0/ab.json"
    assert bytes(doc["body"]) == body
    assert doc["sha256"] == sha(body)
    assert doc["size"] == len(body)
    assert doc["content_type"] == "application/json"
    assert doc["created_at"].tzinfo is not None


async def test_presign_is_refused(mongo_client: AsyncMongoClient[Any], db_name: str) -> None:
    async with MongoBlobStore(mongo_client, db_name, COLLECTION) as store:
        with pytest.raises(StorageError, match="presigned URLs need an S3 store") as info:
            await store.presign_get("a.json", ttl_seconds=60)
    assert info.value.retryable is False


async def test_closing_the_store_keeps_the_client_open(
    mongo_client: AsyncMongoClient[Any], db_name: str
) -> None:
    async with MongoBlobStore(mongo_client, db_name, COLLECTION) as store:
        await store.put("a.json", b"a", sha256=sha(b"a"))
    assert (await mongo_client[db_name].command("ping"))["ok"] == 1


async def test_unresponsive_server_is_retryable() -> None:
    # A server that accepts connections and never answers. (A refused port would be the
    # obvious choice, but pymongo 4.20 leaks the socket of a refused connect attempt that
    # close() cancels - _async_create_connection closes it on OSError only - and the
    # ResourceWarning then fails a later test at random.)
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        await reader.read()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client: AsyncMongoClient[Any] = AsyncMongoClient(
        f"mongodb://127.0.0.1:{port}/?directConnection=true", serverSelectionTimeoutMS=200
    )
    try:
        async with MongoBlobStore(client, "db", COLLECTION) as store:
            for call in (store.ping, lambda: store.get("a.json")):
                with pytest.raises(StorageError) as info:
                    await call()
                assert info.value.retryable is True
                assert "ServerSelectionTimeoutError" in str(info.value)
    finally:
        await client.close()
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        (AutoReconnect("x"), True),
        (NetworkTimeout("x"), True),
        (ServerSelectionTimeoutError("x"), True),
        (OperationFailure("stepped down", code=189), True),
        (OperationFailure("unauthorized", code=13), False),
        (DuplicateKeyError("dup", code=11000), False),
    ],
)
def test_error_classification(error: Exception, retryable: bool) -> None:
    assert _is_retryable(error) is retryable  # type: ignore[arg-type]
