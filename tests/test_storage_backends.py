"""The same operations on every payload store: S3, a local folder, MongoDB itself."""

from __future__ import annotations

from typing import Any

import pytest

from chronos_async import Chronos, StorageError, ValidationError


@pytest.mark.parametrize("storage", ["s3", "local", "mongo"])
async def test_round_trip_on_every_store(make_config: Any, db_name: str, storage: str) -> None:
    config = make_config(storage, collection_maps={"docs": {"indexed_props": ["kind"]}})
    async with Chronos(config) as chronos:
        docs = chronos.collection("docs", db=db_name)
        assert chronos.backends[0].store.kind == storage
        small = await docs.create({"kind": "small", "v": 1})
        large = await docs.create({"kind": "large", "body": "é" * 40_000})  # not inline
        await docs.update(large.id, {"kind": "large", "body": "ü" * 40_000}, expected_ov=0)
        got = await docs.get_latest(large.id)
        assert got is not None and got.data["body"] == "ü" * 40_000
        first = await docs.get_version(large.id, 0)
        assert first is not None and first.data["body"] == "é" * 40_000
        assert (await docs.get_latest(small.id)).data == {"kind": "small", "v": 1}  # type: ignore[union-attr]
        page = await docs.list_by_meta({"kind": "large"})
        assert [i.id for i in page.items] == [large.id]
        await docs.delete(small.id)
        assert await docs.get_latest(small.id) is None
        health = await chronos.admin.health()
        assert health.ok and health.backends[0].store_kind == storage


async def test_presign_on_local_store_gives_file_url(make_config: Any, db_name: str) -> None:
    async with Chronos(make_config("local")) as chronos:
        docs = chronos.collection("docs", db=db_name)
        r = await docs.create({"a": 1})
        item = await docs.get_latest(r.id, presign=True)
        assert item is not None and item.urls["payload"].startswith("file://")


async def test_presign_on_mongo_store_is_refused(make_config: Any, db_name: str) -> None:
    async with Chronos(make_config("mongo")) as chronos:
        docs = chronos.collection("docs", db=db_name)
        r = await docs.create({"a": 1})
        with pytest.raises((StorageError, ValidationError)):
            await docs.get_latest(r.id, presign=True)
