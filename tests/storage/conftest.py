"""Fixtures of the payload-store tests, built on the session servers of tests/conftest.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from chronos_async import SpacesConnection
from chronos_async.storage import (
    BlobStore,
    LocalBlobStore,
    MongoBlobStore,
    ObstoreBlobStore,
    S3BlobStore,
)

PAYLOAD_COLLECTION = "payloads"


@pytest.fixture
def make_conn(s3_server: Any, key_prefix: str) -> Callable[..., SpacesConnection]:
    """Build a SpacesConnection to the session S3 server; keyword arguments override."""

    def build(**overrides: Any) -> SpacesConnection:
        fields: dict[str, Any] = {
            "endpoint": s3_server.endpoint,
            "region": s3_server.region,
            "access_key": s3_server.access_key,
            "secret_key": s3_server.secret_key,
            "json_bucket": s3_server.json_bucket,
            "content_bucket": s3_server.content_bucket,
            "backups_bucket": s3_server.backups_bucket,
            "force_path_style": True,
            "key_prefix": key_prefix,
        }
        fields.update(overrides)
        return SpacesConnection.model_validate(fields)

    return build


@pytest.fixture
async def mongo_client(mongo_uri: str, db_name: str) -> AsyncIterator[AsyncMongoClient[Any]]:
    """A client of its own per test (closed, and its database dropped, at teardown)."""
    client: AsyncMongoClient[Any] = AsyncMongoClient(mongo_uri, tz_aware=True)
    try:
        yield client
    finally:
        try:
            await client.drop_database(db_name)
        finally:
            await client.close()


@pytest.fixture(params=["local", "mongo", "s3", "s3-obstore"])
def unopened_store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    """A store of each kind, not yet opened (server fixtures are requested only as needed).

    S3 runs twice: through aioboto3 (``s3``) and through obstore (``s3-obstore``).
    """
    if request.param == "local":
        return LocalBlobStore(tmp_path / "blobs")
    if request.param == "mongo":
        client = request.getfixturevalue("mongo_client")
        return MongoBlobStore(client, request.getfixturevalue("db_name"), PAYLOAD_COLLECTION)
    make_conn = request.getfixturevalue("make_conn")
    # A small page (or chunk) size makes the 30-key listing tests cross several pages.
    if request.param == "s3-obstore":
        return ObstoreBlobStore(make_conn(), list_chunk_size=7)
    return S3BlobStore(make_conn(), list_page_size=7)


@pytest.fixture
async def store(unopened_store: BlobStore) -> AsyncIterator[BlobStore]:
    """An open store of each kind (the contract tests run once per backend)."""
    async with unopened_store:
        yield unopened_store
